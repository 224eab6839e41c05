package daemon

import (
	"os"
	"path/filepath"
	"testing"
)

// Any config file is read into a configuration or refused with an error;
// never a panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(ExampleConfig))
	f.Add([]byte("api = \"unix:/tmp/x\"\n[discovery]\nmdns = false\n[[models]]\nname = \"a\"\nstrategy = \"shared\"\n"))
	f.Add([]byte("horizon = \"1h\"\nmemory_limit = \"1GiB\"\n[log]\nformat = \"json\"\n"))
	f.Add([]byte("[[models]]\nname = \"a\"\nstrategy = \"shared\"\ndepends_on = [\"a\"]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text []byte) {
		path := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(path, text, 0o600); err != nil {
			t.Fatal(err)
		}
		c := Default()
		if err := LoadFile(&c, path, true); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			return
		}
		if _, err := c.NodeConfig(); err != nil {
			return
		}
	})
}
