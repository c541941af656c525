// Command cafgate is the CAF secure messaging gateway: see `cafgate help`.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
