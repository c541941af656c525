package main

import (
	"flag"
	"fmt"

	"cafgate/configs"
)

func runConfigCheck(c *cli, fs *flag.FlagSet, _ []string) error {
	path := flagString(fs, "config")
	if _, err := configs.Load(path); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%s: configuration is valid\n", path)
	return nil
}

func runConfigDoc(c *cli, _ *flag.FlagSet, _ []string) error {
	_, err := fmt.Fprint(c.out, configs.Reference())
	return err
}
