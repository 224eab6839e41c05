package engine_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEngineIsPure fails if node/engine reaches for the network, the disk,
// the system clock or randomness: the engine must stay a pure state machine
// that a simulation can drive deterministically.
func TestEngineIsPure(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \",\"}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const self = "github.com/syncnode/syncnode/node/engine"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		if strings.HasPrefix(pkg, "github.com/libp2p/") || strings.HasPrefix(pkg, "github.com/dgraph-io/badger") ||
			strings.HasPrefix(pkg, "github.com/multiformats/") {
			t.Errorf("node/engine depends on %s", pkg)
		}
		for _, imp := range strings.Split(imports, ",") {
			if pkg == self {
				switch imp {
				case "net", "os", "os/exec", "syscall", "math/rand", "math/rand/v2", "crypto/rand", "sync", "sync/atomic":
					t.Errorf("node/engine imports %s", imp)
				}
			}
			// The one importer of net allowed: uuid, for node IDs of
			// version 1 UUIDs, which syncnode never generates.
			if (imp == "net" || strings.HasPrefix(imp, "net/")) && pkg != "github.com/google/uuid" &&
				pkg != "net" && !strings.HasPrefix(pkg, "net/") {
				t.Errorf("%s imports %s within node/engine's dependencies", pkg, imp)
			}
		}
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := regexp.MustCompile(`time\.(Now|Since|Until|Sleep|After|Tick|NewTimer|NewTicker)\(|\bgo func|\bgo [a-zA-Z_.]+\(|make\(chan`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			code, _, _ := strings.Cut(line, "//")
			if m := forbidden.FindString(code); m != "" {
				t.Errorf("%s:%d uses %q: time and goroutines come from the caller", f, i+1, m)
			}
		}
	}
}
