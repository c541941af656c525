package configs

import (
	"encoding"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Problem is one thing wrong with a configuration: the file, the setting and what is wrong.
type Problem struct {
	File    string
	Setting string // dotted TOML key, e.g. smtp.max_recipients or directory[1].file
	Line    int    // 0 when unknown
	Message string
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Setting != "" {
		return fmt.Sprintf("%s: %s: %s", loc, p.Setting, p.Message)
	}
	return fmt.Sprintf("%s: %s", loc, p.Message)
}

// Problems is every problem found in one file; Load returns it as its error.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return "bad configuration:\n  " + strings.Join(lines, "\n  ")
}

// Default returns a Config holding every default.
func Default() *Config {
	c := &Config{}
	if err := applyDefaults(reflect.ValueOf(c).Elem(), false); err != nil {
		panic("configs: bad default tag: " + err.Error())
	}
	return c
}

// Load reads, defaults, resolves and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Message: "cannot read the file: " + errors.Unwrap(err).Error()}}
	}
	return Parse(path, data)
}

// Parse is Load on bytes already read; path names the file in problems and anchors relative paths.
func Parse(path string, data []byte) (*Config, error) {
	c := Default()
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return nil, Problems{decodeProblem(path, err)}
	}
	var ps Problems
	for _, k := range md.Undecoded() {
		ps = append(ps, Problem{File: path, Setting: k.String(), Message: "unknown setting (see docs/config.md for the settings there are)"})
	}
	for i := range c.Directories {
		if err := applyDefaults(reflect.ValueOf(&c.Directories[i]).Elem(), true); err != nil {
			return nil, err
		}
	}
	c.resolve(filepath.Dir(path))
	ps = append(ps, c.validate(path)...)
	if len(ps) > 0 {
		return nil, ps
	}
	return c, nil
}

func decodeProblem(path string, err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return Problem{File: path, Line: pe.Position.Line, Message: "not valid TOML: " + pe.Message}
	}
	// Type errors name the key in their text, e.g. `toml: line 3 (last key "smtp.max_recipients"): ...`.
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	return Problem{File: path, Message: msg}
}

// applyDefaults sets each field with a default tag; with onlyZero it leaves fields already set.
func applyDefaults(v reflect.Value, onlyZero bool) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if err := applyDefaults(fv, onlyZero); err != nil {
				return err
			}
			continue
		}
		def, ok := f.Tag.Lookup("default")
		if !ok || def == "" || (onlyZero && !fv.IsZero()) {
			continue
		}
		if err := setText(fv, def); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return nil
}

func setText(fv reflect.Value, s string) error {
	if u, ok := fv.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	default:
		return fmt.Errorf("no default parser for %s", fv.Kind())
	}
	return nil
}

// resolve fills derived paths and makes relative paths absolute against dir.
func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.DataDir)
	if c.Store.Database == "" {
		c.Store.Database = filepath.Join(c.DataDir, "cafgate.db")
	}
	if c.Store.ContentKeyFile == "" {
		c.Store.ContentKeyFile = filepath.Join(c.DataDir, "content.key")
	}
	if c.Admin.Socket == "" {
		c.Admin.Socket = filepath.Join(c.DataDir, "admin.sock")
	}
	for _, p := range []*string{&c.TLS.CertFile, &c.TLS.KeyFile, &c.SMIME.CertFile, &c.SMIME.KeyFile,
		&c.Store.Database, &c.Store.ContentKeyFile, &c.Admin.Socket} {
		abs(p)
	}
	c.resolveTrust(dir)
	c.resolveSMIME(dir)
	c.resolveRelay(dir)
	c.resolveIMAP()
	c.resolveLedger(dir)
	for i := range c.Directories {
		abs(&c.Directories[i].File)
		for j, d := range c.Directories[i].Domains {
			c.Directories[i].Domains[j] = strings.ToLower(strings.TrimSpace(d))
		}
	}
}
