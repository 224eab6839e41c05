package badgerstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

// The crash test ingests pages the way a node resumes a backfill: each page
// is 1,000 records of one origin plus that stream's watermark set to the
// page's last version, written in one Apply. A child process does the
// writing and is killed with SIGKILL at a random moment; the parent then
// checks that the store holds exactly the whole pages up to its watermark.

const (
	crashDirEnv   = "BADGERSTORE_CRASH_DIR"
	crashSyncEnv  = "BADGERSTORE_CRASH_SYNC"
	crashPageSize = 1000
)

var crashStream = store.Stream{Library: storetest.ID(0x11, 9), ModelType: "entry", Origin: storetest.ID(0xd0, 9)}

// crashRecord is the n-th record ingested (n from 1): version n, a payload
// that names n.
func crashRecord(n uint64) store.Record {
	data := make([]byte, 256)
	for i := 0; i < len(data); i += 8 {
		binary.BigEndian.PutUint64(data[i:], n)
	}
	return store.Record{
		Library: crashStream.Library, ModelType: crashStream.ModelType,
		ID: storetest.ID(0x7e, n), Version: hlc.HLC{Timestamp: n, DeviceID: crashStream.Origin}, Data: data,
	}
}

// crashPage is page p (from 0): records p*1000+1 to (p+1)*1000 and the
// watermark at the last.
func crashPage(p uint64) *store.Batch {
	var b store.Batch
	for i := uint64(1); i <= crashPageSize; i++ {
		b.PutRecords = append(b.PutRecords, crashRecord(p*crashPageSize+i))
	}
	b.SetWatermarks = []store.Mark{{Stream: crashStream, HLC: hlc.HLC{Timestamp: (p + 1) * crashPageSize, DeviceID: crashStream.Origin}}}
	return &b
}

// TestCrashHelper is the child: it runs only when TestCrash starts it.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrash")
	}
	o := testOptions()
	o.SyncWrites = os.Getenv(crashSyncEnv) == "1"
	s, err := Open(dir, o)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	w, err := s.Watermark(crashStream)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	// Resume after the last whole page, as a node would.
	for p := w.Timestamp / crashPageSize; ; p++ {
		if err := s.Apply(crashPage(p)); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(2)
		}
		fmt.Printf("page %d\n", p)
	}
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const runs = 6
	deadline := time.Now().Add(45 * time.Second)
	for run := range runs {
		if time.Now().After(deadline) {
			t.Logf("stopping after %d runs: time is up", run)
			break
		}
		syncWrites := run == 0 // one run with fsync, the rest without
		pagesMore := 1 + rng.IntN(4)
		delay := time.Duration(rng.IntN(20_000)) * time.Microsecond
		lastPrinted := crashRun(t, dir, syncWrites, pagesMore, delay)
		pages := crashCheck(t, dir)
		t.Logf("run %d (SyncWrites=%v): killed %v after page %d was printed; store holds %d whole pages", run, syncWrites, delay, lastPrinted, pages)
		if int64(pages) < lastPrinted+1 {
			t.Fatalf("run %d: page %d was committed (Apply returned) but the store holds only %d pages", run, lastPrinted, pages)
		}
	}
}

// crashRun starts the child on dir, waits until it printed pagesMore pages,
// waits delay more and kills it. It returns the last page the child printed.
func crashRun(t *testing.T, dir string, syncWrites bool, pagesMore int, delay time.Duration) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashSyncEnv+"="+map[bool]string{true: "1", false: "0"}[syncWrites])
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	last, seen := int64(-1), 0
	timeout := time.After(30 * time.Second)
	kill := func() { cmd.Process.Signal(syscall.SIGKILL) }
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("child exited before it was killed; stderr:\n%s", stderr.String())
			}
			p, found := strings.CutPrefix(line, "page ")
			if !found {
				if strings.HasPrefix(line, "error") {
					kill()
					cmd.Wait()
					t.Fatalf("child: %s", line)
				}
				continue
			}
			n, err := strconv.ParseInt(p, 10, 64)
			if err != nil {
				t.Fatalf("child printed %q", line)
			}
			last = n
			if seen++; seen == pagesMore {
				break wait
			}
		case <-timeout:
			kill()
			cmd.Wait()
			t.Fatalf("child printed %d pages in 30 s, want %d; stderr:\n%s", seen, pagesMore, stderr.String())
		}
	}
	time.Sleep(delay)
	// Drain what the child printed before the kill: those pages were
	// committed too.
	cmd.Process.Signal(syscall.SIGKILL)
	for line := range lines {
		if p, found := strings.CutPrefix(line, "page "); found {
			if n, err := strconv.ParseInt(p, 10, 64); err == nil {
				last = n
			}
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL; stderr:\n%s", err, stderr.String())
	}
	return last
}

// crashCheck opens dir and checks that it holds whole pages only: the
// watermark is the last version of a page, every record up to it is there
// and right, and nothing beyond it is. It returns the number of pages.
func crashCheck(t *testing.T, dir string) uint64 {
	t.Helper()
	s, err := Open(dir, testOptions())
	if err != nil {
		t.Fatalf("reopening after the kill: %v", err)
	}
	defer s.Close()
	w, err := s.Watermark(crashStream)
	if err != nil {
		t.Fatal(err)
	}
	if w.Timestamp%crashPageSize != 0 || (!w.IsZero() && w.DeviceID != crashStream.Origin) {
		t.Fatalf("watermark %v is not the last version of a page", w)
	}
	want := w.Timestamp // records 1..want
	n := uint64(0)
	after := hlc.HLC{}
	for {
		page, err := s.StatePage(crashStream, after, 5000)
		if err != nil {
			t.Fatalf("StatePage after %v: %v", after, err)
		}
		if page.Watermark != w {
			t.Fatalf("StatePage watermark %v, Watermark %v", page.Watermark, w)
		}
		for _, r := range page.Records {
			n++
			if n > want {
				t.Fatalf("record %s at version %d is beyond the watermark %d: half a page was written", r.ID, r.Version.Timestamp, want)
			}
			if exp := crashRecord(n); r.Version != exp.Version || r.ID != exp.ID || !bytes.Equal(r.Data, exp.Data) || r.Deleted {
				t.Fatalf("record %d of the stream is %s at %v, want %s at %v", n, r.ID, r.Version, exp.ID, exp.Version)
			}
		}
		if len(page.Records) == 0 {
			break
		}
		after = page.Records[len(page.Records)-1].Version
	}
	if n != want {
		t.Fatalf("the stream holds %d records, the watermark says %d", n, want)
	}
	// The record keys agree with the index: nothing beyond the watermark.
	rs, err := s.List(crashStream.Library, crashStream.ModelType, storetest.ID(0x7e, want), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 0 {
		t.Fatalf("List finds %d records past record %d (first %s)", len(rs), want, rs[0].ID)
	}
	if want > 0 {
		if _, err := s.Record(store.RecordKey{Library: crashStream.Library, ModelType: crashStream.ModelType, ID: storetest.ID(0x7e, want)}); err != nil {
			t.Fatalf("last record of the last page: %v", err)
		}
	}
	return want / crashPageSize
}
