package e2e

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node/localapi"
)

// backfillRecords is the size of the library that the crash test backfills:
// big enough that its backfill takes more than a second on a small machine,
// so that the test can kill the joiner in the middle of it.
const backfillRecords = 50000

// fill writes count device-owned entry records of about 1 KiB each on n,
// 1000 per batch request.
func fill(h *harness, n *node, lib string, count int) {
	h.t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	blob := make([]byte, 1000)
	for done := 0; done < count; {
		k := min(localapi.MaxBatchRecords, count-done)
		req := localapi.BatchRequest{Records: make([]localapi.BatchRecord, k)}
		for i := range req.Records {
			for j := range blob {
				blob[j] = letters[rng.IntN(len(letters))]
			}
			req.Records[i] = localapi.BatchRecord{Model: "entry",
				Data: []byte(fmt.Sprintf(`{"path":"/photos/%06d.jpg","size":%d,"blob":%q}`, done+i, rng.IntN(1<<30), blob))}
		}
		var res localapi.BatchResult
		n.apiJSON("POST", libPath(lib, "batch"), req, &res)
		if len(res.Written) != k {
			h.t.Fatalf("a batch of %d records answered %d writes", k, len(res.Written))
		}
		done += k
	}
}

// writer puts tags through the CLI, one process per put, until stopped or
// until a put fails; it remembers every put that returned 0 (an
// acknowledged write) with the version it printed.
type writer struct {
	n       *node
	lib     string
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	acked   map[string]string // record ID → version
	failure string            // the first failed put
}

func startWriter(n *node, lib string, prefix string) *writer {
	w := &writer{n: n, lib: lib, stop: make(chan struct{}), done: make(chan struct{}), acked: map[string]string{}}
	go func() {
		defer close(w.done)
		for i := 0; i < 100000; i++ {
			select {
			case <-w.stop:
				return
			case <-n.h.ctx.Done():
				return
			default:
			}
			id := uuid.NewString()
			r := n.cliRaw("--json", "put", "tag", "--id", id, fmt.Sprintf(`{"name":"%s-%d"}`, prefix, i))
			if r.code != 0 {
				w.mu.Lock()
				w.failure = r.String()
				w.mu.Unlock()
				return
			}
			var v struct{ Version string }
			if err := jsonUnmarshal(r.stdout, &v); err != nil {
				w.mu.Lock()
				w.failure = fmt.Sprintf("put printed %q: %v", r.stdout, err)
				w.mu.Unlock()
				return
			}
			w.mu.Lock()
			w.acked[id] = v.Version
			w.mu.Unlock()
		}
	}()
	return w
}

// failed is the first failed put, if any.
func (w *writer) failed() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failure
}

// count is the number of acknowledged writes so far.
func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// finish stops the writer and returns its acknowledged writes.
func (w *writer) finish() map[string]string {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// holdsAll reports whether n holds every acknowledged write (at its version
// or a newer one; nothing else writes these IDs, so at its version).
func holdsAll(n *node, lib string, acked map[string]string) (bool, string) {
	recs, err := n.listAll(lib, "tag")
	if err != nil {
		return false, err.Error()
	}
	missing := 0
	example := ""
	for id, v := range acked {
		if r, ok := recs[id]; !ok || r.Version != v || r.Deleted {
			missing++
			example = fmt.Sprintf("%s (want version %s, have %+v)", id, v, r)
		}
	}
	return missing == 0, fmt.Sprintf("%s lacks %d of %d acknowledged writes, e.g. %s", n.name, missing, len(acked), example)
}

// TestKillDuringBackfillAndWrites kills (-9) a joiner in the middle of its
// initial backfill while the inviter takes a stream of writes: restarted,
// its backfill resumes where it stopped (the records applied after the
// restart are far fewer than the library) and every acknowledged write is
// there. Then it kills the same node in the middle of a stream of writes
// made on it: every write it acknowledged survives and reaches the other
// node.
func TestKillDuringBackfillAndWrites(t *testing.T) {
	h := newHarness(t, 3*time.Minute)
	a := h.newNode("alpha", nodeOpts{})
	b := h.newNode("bravo", nodeOpts{})
	a.start()
	b.start()
	lib := a.createLibrary("big")
	start := time.Now()
	fill(h, a, lib, backfillRecords)
	t.Logf("alpha wrote %d records of ~1 KiB in %s", backfillRecords, time.Since(start).Round(time.Millisecond))

	wa := startWriter(a, lib, "alpha")
	h.waitFor("alpha's first acknowledged write", 20*time.Second, func() (bool, string) { return wa.count() > 0, wa.failed() })

	// Join without waiting (the daemon backfills; the CLI would wait), then
	// kill the joiner once it holds between a fifth and two thirds of the
	// library.
	b.mustCLI("library", "join", "--no-wait", a.invite())
	joined := time.Now()
	killedAt := 0
	for i := 0; killedAt == 0; i++ {
		st, err := b.libStatus(lib)
		if err != nil {
			t.Fatalf("bravo's status during the backfill: %v", err)
		}
		switch {
		case st.Received >= backfillRecords*2/3:
			t.Fatalf("bravo received %d records before the test could kill it (%s after the join): make backfillRecords bigger", st.Received, time.Since(joined))
		case st.Received >= backfillRecords/5:
			b.kill()
			killedAt = st.Received
		case i > 3000 || time.Since(joined) > time.Minute:
			t.Fatalf("bravo's backfill did not reach %d records in a minute: %+v", backfillRecords/5, st)
		default:
			h.sleep(5 * time.Millisecond)
		}
	}
	t.Logf("killed bravo (-9) %s after the join, having received %d of %d records", time.Since(joined).Round(time.Millisecond), killedAt, backfillRecords)

	b.start()
	restarted := time.Now()
	h.waitFor("bravo's backfill to finish after the restart", time.Minute, func() (bool, string) {
		st, err := b.libStatus(lib)
		if err != nil {
			return false, err.Error()
		}
		live := len(st.Peers) == 1 && st.Peers[0].State == "live"
		return live, fmt.Sprintf("peers %+v, received %d", st.Peers, st.Received)
	})
	acked := wa.finish()
	if f := wa.failed(); f != "" {
		t.Fatalf("a put on alpha failed: %s", f)
	}
	h.waitConverged(lib, []string{"entry", "tag"}, time.Minute, a, b)
	applied := b.metric("syncnode_catchup_records_applied_total")
	st, _ := b.libStatus(lib)
	t.Logf("after the restart bravo applied %.0f catch-up records and received %d (library: %d entries, %d tags), in %s",
		applied, st.Received, backfillRecords, len(acked), time.Since(restarted).Round(time.Millisecond))
	// Resumed, not restarted: what bravo held at the kill is not sent again
	// (a margin of half of it for pages in flight).
	if limit := float64(backfillRecords + len(acked) - killedAt/2); applied > limit {
		t.Fatalf("after the restart bravo applied %.0f catch-up records: the backfill restarted from zero (it held %d of %d at the kill; want at most %.0f)",
			applied, killedAt, backfillRecords, limit)
	}
	if applied == 0 {
		t.Fatalf("after the restart bravo applied no catch-up record, though it held only %d of %d", killedAt, backfillRecords)
	}
	for _, n := range []*node{a, b} {
		if ok, seen := holdsAll(n, lib, acked); !ok {
			t.Fatal(seen)
		}
	}

	// Kill bravo in the middle of a stream of writes made on it.
	wb := startWriter(b, lib, "bravo")
	h.waitFor("20 acknowledged writes on bravo", 30*time.Second, func() (bool, string) {
		return wb.count() >= 20, fmt.Sprintf("%d so far; failure: %s", wb.count(), wb.failed())
	})
	b.kill()
	ackedB := wb.finish()
	// The writer stops at its first failed put (the daemon is gone) or when
	// told to: either way no put hung.
	t.Logf("killed bravo (-9) after %d acknowledged writes on it; the writer's first failed put: %q", len(ackedB), wb.failed())
	b.start()
	if ok, seen := holdsAll(b, lib, ackedB); !ok {
		t.Fatalf("after kill -9 and restart: %s", seen)
	}
	h.waitFor("every write acknowledged by bravo on alpha", time.Minute, func() (bool, string) { return holdsAll(a, lib, ackedB) })
	h.waitConverged(lib, []string{"entry", "tag"}, time.Minute, a, b)
}
