package daemon

import (
	_ "embed"
	"fmt"
	"strings"
)

// ExampleConfig is the config file that `syncnode init` writes: every key,
// commented out, at its default, with what it does. docs/CONFIG.md shows
// it, and a test checks that uncommenting it yields the defaults.
//
//go:embed config.example.toml
var ExampleConfig string

// ExampleConfigFor is ExampleConfig with data_dir set (uncommented) when
// it is not the default.
func ExampleConfigFor(dataDir string) string {
	if dataDir == "" || dataDir == defaultDataDir() {
		return ExampleConfig
	}
	return strings.Replace(ExampleConfig, "# data_dir = \"/home/me/.local/share/syncnode\"",
		fmt.Sprintf("data_dir = %q", dataDir), 1)
}
