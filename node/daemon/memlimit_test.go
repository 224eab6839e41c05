package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cgroupTree writes files (path relative to a new root: content) and
// returns the root.
func cgroupTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// The cgroup's limit is the smallest of its own and its ancestors', on
// cgroup v1 and v2; "max" and v1's huge "unlimited" are no limit; a process
// in no memory cgroup, or one whose files cannot be read, has none.
func TestCgroupMemoryLimit(t *testing.T) {
	const unlimitedV1 = "9223372036854771712\n"
	cases := []struct {
		name  string
		proc  string
		files map[string]string
		want  int64
	}{
		{"v2 own limit", "0::/user.slice/app.scope\n", map[string]string{
			"user.slice/app.scope/memory.max": "314572800\n",
			"user.slice/memory.max":           "max\n",
		}, 300 << 20},
		{"v2 parent smaller", "0::/a/b\n", map[string]string{
			"a/b/memory.max": "1073741824\n",
			"a/memory.max":   "209715200\n",
		}, 200 << 20},
		{"v2 no limit", "0::/a\n", map[string]string{"a/memory.max": "max\n"}, 0},
		{"v1 own limit", "12:memory:/process_api/x/bench\n4:cpu,cpuacct:/x\n", map[string]string{
			"memory/process_api/x/bench/memory.limit_in_bytes": "314572800\n",
			"memory/process_api/x/memory.limit_in_bytes":       "25769803776\n",
			"memory/process_api/memory.limit_in_bytes":         unlimitedV1,
			"memory/memory.limit_in_bytes":                     unlimitedV1,
		}, 300 << 20},
		{"v1 unlimited", "4:memory:/\n", map[string]string{"memory/memory.limit_in_bytes": unlimitedV1}, 0},
		{"v1 joined controllers", "3:cpu,memory:/c\n", map[string]string{"memory/c/memory.limit_in_bytes": "104857600"}, 100 << 20},
		{"hybrid: v1 memory beside an empty v2 line", "0::/\n5:memory:/m\n", map[string]string{
			"memory/m/memory.limit_in_bytes": "157286400\n",
		}, 150 << 20},
		{"no memory controller", "4:cpu:/x\n", nil, 0},
		{"unreadable limit", "0::/a\n", map[string]string{"a/memory.max": "lots\n"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := cgroupTree(t, c.files)
			proc := filepath.Join(t.TempDir(), "cgroup")
			if err := os.WriteFile(proc, []byte(c.proc), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := cgroupMemoryLimit(proc, root); got != c.want {
				t.Fatalf("cgroupMemoryLimit = %d, want %d", got, c.want)
			}
		})
	}
	if got := cgroupMemoryLimit(filepath.Join(t.TempDir(), "absent"), t.TempDir()); got != 0 {
		t.Fatalf("without /proc/self/cgroup: %d, want 0", got)
	}
}

// "auto" is 256 MiB, or half a memory cgroup's limit where that is less,
// never below 64 MiB; a size is taken as it is.
func TestResolveMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		cgroup, want int64
	}{
		{0, 256 << 20},
		{24 << 30, 256 << 20},
		{512 << 20, 256 << 20},
		{300 << 20, 150 << 20},
		{100 << 20, 64 << 20},
	} {
		if got := autoMemoryLimit(c.cgroup); got != c.want {
			t.Errorf("autoMemoryLimit(%d MiB) = %d MiB, want %d MiB", c.cgroup>>20, got>>20, c.want>>20)
		}
	}
	if l, cg, err := resolveMemoryLimit("1GiB"); err != nil || l != 1<<30 || cg != 0 {
		t.Errorf(`resolveMemoryLimit("1GiB") = %d, %d, %v`, l, cg, err)
	}
	if l, _, err := resolveMemoryLimit("0"); err != nil || l != 0 {
		t.Errorf(`resolveMemoryLimit("0") = %d, %v`, l, err)
	}
	if _, _, err := resolveMemoryLimit("lots"); err == nil {
		t.Error(`resolveMemoryLimit("lots") took it`)
	}
	if l, cg, err := resolveMemoryLimit(AutoMemoryLimit); err != nil || l < minAutoMemoryLimit || l > DefaultMemoryLimit {
		t.Errorf("resolveMemoryLimit(auto) on this machine = %d (cgroup %d), %v", l, cg, err)
	}
	if d := describeMemoryLimit(AutoMemoryLimit, 150<<20, 300<<20); !strings.Contains(d, "half of the memory cgroup's 300 MiB") {
		t.Errorf("describeMemoryLimit: %q", d)
	}
}
