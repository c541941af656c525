package configs

import _ "embed"

// SampleDirectory is configs/sample-directory.ldif: the development directory's practitioners, without
// passwords or certificates (the quick start adds generated ones).
//
//go:embed sample-directory.ldif
var SampleDirectory []byte

// Example is configs/example.toml, the commented production example.
//
//go:embed example.toml
var Example []byte
