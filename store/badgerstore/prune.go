package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
)

// Background pruning. Apply commits a batch's atomic part and hands its
// PruneLog and PurgeTombstones marks to the store's pruner, which runs them
// in one goroutine of its own (started by Open, stopped by Close), so that
// Apply never waits for deletions (store.Batch allows this: the deletions
// are idempotent and the prune points that make them safe are set by the
// atomic part first). Marks wait coalesced: one per stream and kind, the
// highest asked for, taken in the order the streams were first asked for.
//
// Pruning is incremental: for each stream and kind the pruner remembers (in
// memory) the mark below which it has deleted everything asked for, and the
// next run of the stream starts there instead of at the start of the stream.
// A write below that point (an Apply that appends a log entry or puts a
// tombstone below it, or at or below the mark of a run in progress) moves
// the point back to it. After a restart the first run of a stream starts at
// the start of the stream.
//
// A run reads keys in read-only snapshots (key-only iteration; a purge
// reads the one-byte tombstone flag of index entries, never a record it
// does not delete), copies only the keys it deletes, and deletes them in
// transactions, pausing after each chunk as long as it took (see pace). A
// run's first transaction deletes at most deleteChunk keys; each time a
// chunk comes back full (the run has more to do: the pruner is behind),
// the next one may delete twice as many, up to maxDeleteChunk (see
// chunkSize). The limit is not the pruner's CPU (a profile of BenchmarkHotSet
// puts it at 4% of the process's) but its one transaction per pause: each
// commit waits its turn in Badger's one write pipeline behind Apply's, so
// with transactions of a fixed size the pruner deleted about half as fast
// as a busy Apply wrote, and the log grew without bound. Growing chunks
// keep the pause (Apply still gets the pipeline at least half of the time)
// while each turn deletes more. A purge re-reads each
// tombstone's record in its deleting transaction and leaves it alone unless
// it is still that tombstone; a record rewritten meanwhile either is seen so
// or makes the transaction conflict, and it is retried.
//
// PurgeLibraries goes through the same queue (a key of kind kindLibrary, no
// mark) and runs the same way: per key kind of the library, snapshots of
// up to a chunk of keys deleted in transactions of their own, paced, and
// abandoned by Close like any run (see purgeLibrary). It does not use
// badger's DB.DropPrefix, which would be quicker for a big library: that
// blocks every write of the store (it stops the memtable writes and the
// compactions, flushes the memtables and rewrites the tables holding the
// prefix) for as long as it takes, cannot be paced or cut short by Close,
// and deletes outside transactions, so that an Apply racing with it could
// leave a record without its index entry. Deleting in transactions keeps
// Apply running and every record in step with its index.

const (
	// deleteChunk is how many keys the first transaction of a run of
	// PruneLog, PurgeTombstones or PurgeLibraries deletes at most; later
	// ones of the same run may delete more (chunkSize).
	deleteChunk = 1000
	// maxDeleteChunk bounds the keys of one deleting transaction of a run
	// that is behind: about 1.3 MB of Badger's transaction limit (15% of the
	// memtable, 5.5 MiB by default) for log keys, and a pause as long as
	// the commit (see pace), so that Apply keeps its turns.
	maxDeleteChunk = 16 * deleteChunk
	// scanChunk is how many index entries one read snapshot of a purge
	// examines at most.
	scanChunk = 16 * deleteChunk
	// maxPendingPrunes bounds the marks waiting (one per stream and kind).
	// An Apply that would add one more waits for room; with one entry per
	// stream it takes a node with tens of thousands of streams, all pruned
	// at once, to reach it.
	maxPendingPrunes = 1 << 16
	// closeDrain is how long Close lets waiting prunes run before it
	// abandons the rest (they are not lost for good: a later prune of the
	// stream, which asks for a higher mark, deletes everything below it).
	closeDrain = time.Second
)

// errStopped ends a run that Close abandoned.
var errStopped = errors.New("badgerstore: pruning stopped by Close")

// pruneKey names one kind of pruning of one stream: kindLog for PruneLog,
// kindIndex for PurgeTombstones; or, with kind kindLibrary and only
// stream.Library set, the PurgeLibraries of a library.
type pruneKey struct {
	kind   byte
	stream store.Stream
}

func (k pruneKey) String() string {
	what := "pruning log"
	switch k.kind {
	case kindIndex:
		what = "purging tombstones"
	case kindLibrary:
		return fmt.Sprintf("purging library %s", k.stream.Library)
	}
	return fmt.Sprintf("%s of %s/%s/%s", what, k.stream.Library, k.stream.ModelType, k.stream.Origin)
}

// pruneProgress is what this process knows of one pruneKey.
type pruneProgress struct {
	// from: every log entry (or tombstone) of the stream below it that was
	// asked to be deleted has been; the next run starts here.
	from hlc.HLC
	// running and upTo: a run up to the mark upTo is in progress.
	running bool
	upTo    hlc.HLC
	// gen counts the writes that moved from back or landed at or below
	// upTo while running; a run that saw it change does not move from.
	gen uint64
}

// pruner holds the waiting marks and the progress of every stream. Its
// goroutine is Store.runPruner.
type pruner struct {
	mu   sync.Mutex
	cond sync.Cond // on mu: work was added or finished, or stopping began
	// pending is the highest waiting mark of each key; queue orders the
	// keys of pending, first asked first.
	pending   map[pruneKey]hlc.HLC
	queue     []pruneKey
	progress  map[pruneKey]*pruneProgress
	busy      bool    // the goroutine is running a key
	errs      []error // failures since the last WaitPruned
	abandoned int     // runs Close cut short
	stopping  bool    // Close began: no more work after the deadline
	deadline  time.Time
	exited    bool          // the goroutine returned
	done      chan struct{} // closed when it returned
	stopped   chan struct{} // closed when Close began
	stopOnce  sync.Once
	drain     time.Duration // closeDrain; tests shorten it

	// examined counts the keys the runs read, and txns their deleting
	// transactions (test hooks).
	examined atomic.Int64
	txns     atomic.Int64
	// Test hooks, nil in production: a run of a key waits for a value from
	// gate (or for Close) first, and a purge calls afterScan between reading
	// a snapshot and deleting what it found.
	gate      chan struct{}
	afterScan func()
}

func newPruner() *pruner {
	p := &pruner{
		pending:  make(map[pruneKey]hlc.HLC),
		progress: make(map[pruneKey]*pruneProgress),
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
		drain:    closeDrain,
	}
	p.cond.L = &p.mu
	return p
}

// request adds the marks of one Apply, keeping the highest per key. It waits
// while maxPendingPrunes keys are waiting; once Close began it drops them.
func (p *pruner) request(kind byte, marks []store.Mark) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range marks {
		k := pruneKey{kind, m.Stream}
		if cur, ok := p.pending[k]; ok {
			p.pending[k] = hlc.Max(cur, m.HLC)
			continue
		}
		for len(p.pending) >= maxPendingPrunes && !p.stopping {
			p.cond.Wait()
		}
		if p.stopping {
			return
		}
		p.pending[k] = m.HLC
		p.queue = append(p.queue, k)
	}
	p.cond.Broadcast()
}

// requestPurge adds the PurgeLibraries of one Apply (a library already
// waiting is not added twice). Like request, it waits for room and drops
// them once Close began.
func (p *pruner) requestPurge(libs []uuid.UUID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range libs {
		k := pruneKey{kind: kindLibrary, stream: store.Stream{Library: id}}
		if _, ok := p.pending[k]; ok {
			continue
		}
		for len(p.pending) >= maxPendingPrunes && !p.stopping {
			p.cond.Wait()
		}
		if p.stopping {
			return
		}
		p.pending[k] = hlc.HLC{}
		p.queue = append(p.queue, k)
	}
	p.cond.Broadcast()
}

// wrote records the writes of a committed batch that land below a stream's
// progress point (or at or below a running mark), so that the next run of
// the stream starts low enough to see them.
func (p *pruner) wrote(b *store.Batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.progress) == 0 {
		return
	}
	// Pages usually hold one stream: look each stream up once in a row.
	var last pruneKey
	var prog *pruneProgress
	looked := false
	see := func(k pruneKey, h hlc.HLC) {
		if !looked || k != last {
			last, prog, looked = k, p.progress[k], true
		}
		if prog == nil {
			return
		}
		if h.Less(prog.from) || prog.running && !h.After(prog.upTo) {
			prog.from = hlc.Min(prog.from, h)
			prog.gen++
		}
	}
	for i := range b.PutRecords {
		if r := &b.PutRecords[i]; r.Deleted {
			see(pruneKey{kindIndex, r.Stream()}, r.Version)
		}
	}
	for i := range b.AppendLog {
		e := &b.AppendLog[i]
		see(pruneKey{kindLog, e.Stream()}, e.HLC)
	}
}

// next waits for a key to run and marks it running. It returns ok false
// when the goroutine should return.
func (p *pruner) next() (k pruneKey, mark, from hlc.HLC, gen uint64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.queue) == 0 && !p.stopping {
		p.cond.Wait()
	}
	if gate := p.gate; gate != nil && len(p.queue) > 0 {
		p.mu.Unlock()
		select {
		case <-gate:
		case <-p.stopped:
		}
		p.mu.Lock()
	}
	if len(p.queue) == 0 || p.pastDeadline() {
		return k, mark, from, gen, false
	}
	k = p.queue[0]
	p.queue[0] = pruneKey{}
	p.queue = p.queue[1:]
	mark = p.pending[k]
	delete(p.pending, k)
	prog := p.progress[k]
	if prog == nil {
		prog = &pruneProgress{}
		p.progress[k] = prog
	}
	prog.running, prog.upTo = true, mark
	p.busy = true
	p.cond.Broadcast() // room for a waiting request
	return k, mark, prog.from, prog.gen, true
}

// finish records the end of a run of k up to mark.
func (p *pruner) finish(k pruneKey, mark hlc.HLC, gen uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prog := p.progress[k]
	prog.running = false
	if k.kind == kindLibrary {
		// Forget the library's progress points, this purge's included: a
		// point is only a place to start from, and starting a later prune
		// at the start of its stream is always correct.
		for pk := range p.progress {
			if pk.stream.Library == k.stream.Library && !p.progress[pk].running {
				delete(p.progress, pk)
			}
		}
	}
	switch {
	case err == nil:
		if prog.gen == gen && mark.After(prog.from) {
			prog.from = mark
		}
	case errors.Is(err, errStopped):
		p.abandoned++
	default:
		p.errs = append(p.errs, fmt.Errorf("%s up to %s: %w", k, mark, err))
	}
	p.busy = false
	p.cond.Broadcast()
}

// pastDeadline reports whether Close's drain time is over. p.mu is held.
func (p *pruner) pastDeadline() bool {
	return p.stopping && !time.Now().Before(p.deadline)
}

// pace pauses a run after a chunk that began at start for as long as the
// chunk took, so that pruning takes at most about half of a core and of
// Badger's write pipeline and leaves the rest to Apply. It returns early
// when Close begins.
func (p *pruner) pace(start time.Time) {
	t := time.NewTimer(time.Since(start))
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.stopped:
	}
}

// chunkSize returns the most keys the next deleting transaction of a run
// may take, after one of n that came back full: twice as many, up to
// limit (see chunkLimit). A full chunk means the run is behind the marks it
// was given; one that is not full ends the run, and the next run starts
// again at deleteChunk.
func chunkSize(n, limit int) int {
	return min(2*n, limit)
}

// chunkLimit returns the most keys a deleting transaction may take when
// each costs Badger at most keyBytes bytes (its key) and at most two
// entries (a purge deletes a record with its index entry): maxDeleteChunk,
// or less if Badger's transaction limits are smaller (they are not with
// any MemTableSize that Options allows, except with the longest model
// types), and at most deleteChunk below those limits.
func (s *Store) chunkLimit(keyBytes int) int {
	count := int(s.db.MaxBatchCount())/2 - 1
	size := int(s.db.MaxBatchSize()) / (2 * (keyBytes + badgerEntryOverhead))
	return max(1, min(maxDeleteChunk, count, size))
}

// abandoning reports whether a run should stop between transactions.
func (p *pruner) abandoning() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pastDeadline()
}

// stop lets the goroutine drain for up to p.drain, waits for it to return
// and reports how many keys it abandoned.
func (p *pruner) stop() (abandoned int) {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.stopping, p.deadline = true, time.Now().Add(p.drain)
		close(p.stopped)
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) + p.abandoned
}

// WaitPruned waits until the PruneLog, PurgeTombstones and PurgeLibraries
// of every Apply
// that returned before the call have run (it waits until no prune is waiting
// or running, so under a steady stream of new ones it can wait long), and
// returns the errors of the runs that failed since the previous call (a
// failure is also logged; the deletions can be asked for again). If Close
// abandoned some, it returns an error wrapping store.ErrClosed; after Close
// it returns at once. Apply does not wait for pruning: see the package
// comment. Tests use WaitPruned to read what a prune left.
func (s *Store) WaitPruned() error {
	p := s.pr
	p.mu.Lock()
	defer p.mu.Unlock()
	for (len(p.queue) > 0 || p.busy) && !p.exited {
		p.cond.Wait()
	}
	errs := p.errs
	p.errs = nil
	if n := len(p.queue) + p.abandoned; n > 0 {
		errs = append(errs, fmt.Errorf("%w: %d prunes abandoned", store.ErrClosed, n))
	}
	return errors.Join(errs...)
}

// runPruner is the pruning goroutine.
func (s *Store) runPruner() {
	p := s.pr
	defer func() {
		p.mu.Lock()
		p.exited, p.busy = true, false
		p.cond.Broadcast()
		p.mu.Unlock()
		close(p.done)
	}()
	for {
		k, mark, from, gen, ok := p.next()
		if !ok {
			return
		}
		var err error
		if !mark.Less(from) {
			switch k.kind {
			case kindLog:
				err = s.pruneLog(k.stream, from, mark)
			case kindIndex:
				err = s.purgeTombstones(k.stream, from, mark)
			case kindLibrary:
				err = s.purgeLibrary(k.stream.Library)
			}
		}
		if err != nil && !errors.Is(err, errStopped) {
			s.log.Warn("badgerstore: background pruning failed; the next prune of the stream retries it", "what", k.String(), "mark", mark.String(), "err", err)
		}
		p.finish(k, mark, gen, err)
	}
}

// deleteIn runs fn in a read-write transaction (retried on conflict),
// unless the store is closed.
func (s *Store) deleteIn(fn func(txn *badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return s.update(fn)
}

// pruneLog deletes the log entries of stream st from from up to mark
// (inclusive): it reads up to a chunk of keys (chunkSize) in a snapshot,
// deletes them in one transaction, and goes on after the last.
func (s *Store) pruneLog(st store.Stream, from, mark hlc.HLC) error {
	prefix := streamPrefix(nil, kindLog, st)
	last := mark.AppendKey(bytes.Clone(prefix)) // the greatest key to delete
	cursor := from.AppendKey(bytes.Clone(prefix))
	limit := s.chunkLimit(len(last))
	for chunk := min(deleteChunk, limit); ; chunk = chunkSize(chunk, limit) {
		if s.pr.abandoning() {
			return errStopped
		}
		start := time.Now()
		buf := make([]byte, 0, chunk*len(last))
		keys := make([][]byte, 0, chunk)
		var freed int64
		err := s.view(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			for it.Seek(cursor); it.ValidForPrefix(prefix) && len(keys) < chunk; it.Next() {
				item := it.Item()
				key := item.Key()
				if bytes.Compare(key, last) > 0 {
					break
				}
				s.pr.examined.Add(1)
				freed += item.EstimatedSize()
				start := len(buf)
				buf = append(buf, key...)
				keys = append(keys, buf[start:len(buf):len(buf)])
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		s.pr.txns.Add(1)
		err = s.deleteIn(func(txn *badger.Txn) error {
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.churned(freed)
		if len(keys) < chunk {
			return nil
		}
		cursor = append(bytes.Clone(keys[len(keys)-1]), 0) // the next key
		s.pr.pace(start)
	}
}

// purgeTombstones drops the tombstones of stream st with versions from from
// up to mark (inclusive), record and index entry: it walks the stream's
// index in snapshots of up to scanChunk entries, collecting tombstones, and
// deletes up to half a chunk of them (two keys each) per transaction.
func (s *Store) purgeTombstones(st store.Stream, from, mark hlc.HLC) error {
	prefix := streamPrefix(nil, kindIndex, st)
	last := mark.AppendKey(bytes.Clone(prefix)) // index keys up to here, plus an ID
	cursor := from.AppendKey(bytes.Clone(prefix))
	keyLen := len(prefix) + hlc.KeySize + idSize
	limit := s.chunkLimit(max(keyLen, 1+idSize+len(st.ModelType)+1+idSize))
	for chunk := min(deleteChunk, limit); ; {
		if s.pr.abandoning() {
			return errStopped
		}
		start := time.Now()
		buf := make([]byte, 0, chunk/2*keyLen)
		var cands [][]byte // index entries of tombstones, in buf
		var next []byte    // where the next snapshot starts; nil: done
		err := s.view(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			examined := 0
			for it.Seek(cursor); it.ValidForPrefix(prefix); it.Next() {
				item := it.Item()
				key := item.Key()
				if len(key) != keyLen {
					return corruptKey(kindIndex, key, "wrong length")
				}
				if bytes.Compare(key[:len(last)], last) > 0 {
					return nil
				}
				if len(cands) == max(chunk/2, 1) || examined == scanChunk {
					next = bytes.Clone(key)
					return nil
				}
				examined++
				s.pr.examined.Add(1)
				flags, _, err := indexFlags(key, item) // from the user meta: no value read
				if err != nil {
					return err
				}
				if flags&flagTombstone != 0 {
					start := len(buf)
					buf = append(buf, key...)
					cands = append(cands, buf[start:len(buf):len(buf)])
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if s.pr.afterScan != nil {
			s.pr.afterScan()
		}
		if len(cands) > 0 {
			s.pr.txns.Add(1)
			if err := s.purgeChunk(st, len(prefix), cands); err != nil {
				return err
			}
			s.churned(int64(len(cands) * 2 * keyLen))
		}
		if next == nil {
			return nil
		}
		if len(cands) == max(chunk/2, 1) {
			chunk = chunkSize(chunk, limit)
		}
		cursor = next
		s.pr.pace(start)
	}
}

// purgeChunk deletes the tombstones whose index entries are ikeys, each
// only if its record is still that tombstone in the deleting transaction.
func (s *Store) purgeChunk(st store.Stream, prefixLen int, ikeys [][]byte) error {
	return s.deleteIn(func(txn *badger.Txn) error {
		// Record keys stay referenced by the transaction until it commits.
		arena := make([]byte, 0, len(ikeys)*(1+idSize+len(st.ModelType)+1+idSize))
		var counts countDeltas
		for _, ik := range ikeys {
			v, _ := hlc.FromKey(ik[prefixLen:])
			start := len(arena)
			arena = recordKey(arena, st.Library, st.ModelType, uuid.UUID(ik[prefixLen+hlc.KeySize:]))
			rk := arena[start:len(arena):len(arena)]
			cur, deleted, found, err := recordState(txn, rk)
			if err != nil {
				return err
			}
			if !found || cur != v || !deleted {
				// Rewritten or dropped since the snapshot, unless the index
				// entry still says otherwise.
				if err := checkIndexEntry(txn, ik, v, cur, deleted, found); err != nil {
					return err
				}
				continue
			}
			if err := txn.Delete(rk); err != nil {
				return err
			}
			if err := txn.Delete(ik); err != nil {
				return err
			}
			counts.add(st.Library, st.ModelType, -1)
		}
		return counts.write(txn)
	})
}

// recordState reads the version and tombstone flag of the record under rk.
func recordState(txn *badger.Txn, rk []byte) (v hlc.HLC, deleted, found bool, err error) {
	item, err := txn.Get(rk)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return v, false, false, nil
	}
	if err != nil {
		return v, false, false, err
	}
	err = item.Value(func(val []byte) error {
		var err error
		if v, err = recordVersion(rk, val); err != nil {
			return err
		}
		deleted = val[1]&flagTombstone != 0
		return nil
	})
	return v, deleted, err == nil, err
}

// checkIndexEntry is called when the record of index entry ik (version v,
// a tombstone when the snapshot was read) is no longer that tombstone: it
// returns nil if the index entry is gone or agrees with the record (a
// concurrent write changed both), and ErrCorrupt otherwise.
func checkIndexEntry(txn *badger.Txn, ik []byte, v, cur hlc.HLC, deleted, found bool) error {
	item, err := txn.Get(ik)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	flags, _, err := indexFlags(ik, item)
	if err != nil {
		return err
	}
	switch {
	case !found:
		return corruptValue(ik, "index entry of a missing record")
	case cur != v || deleted != (flags&flagTombstone != 0):
		return corruptValue(ik, "index entry says version %s (tombstone %v), record is at %s (tombstone %v)", v, flags&flagTombstone != 0, cur, deleted)
	}
	return nil
}

// purgeKinds are the key kinds PurgeLibraries deletes, in the order it
// deletes them: records first, each with its index entry (so that a record
// is never left without it), then what is left of the index (entries of
// records written meanwhile stay), then the rest. Libraries and members are
// configuration: DropLibraries deletes them.
var purgeKinds = []byte{kindRecord, kindIndex, kindLog, kindWatermark, kindAck, kindPrune, kindQuarantine}

// purgeLibrary deletes every key of library lib of purgeKinds: for each
// kind it reads up to a chunk of keys (chunkSize) in a snapshot, deletes
// them in one transaction, and goes on after the last until the prefix is
// empty.
func (s *Store) purgeLibrary(lib uuid.UUID) error {
	for _, kind := range purgeKinds {
		prefix := libPrefix(nil, kind, lib)
		cursor := bytes.Clone(prefix)
		limit := s.chunkLimit(maxFixedKey + store.MaxModelTypeLen)
		for chunk := min(deleteChunk, limit); ; chunk = chunkSize(chunk, limit) {
			if s.pr.abandoning() {
				return errStopped
			}
			start := time.Now()
			var buf []byte
			keys := make([][]byte, 0, chunk)
			var freed int64
			err := s.view(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
				defer it.Close()
				for it.Seek(cursor); it.ValidForPrefix(prefix) && len(keys) < chunk; it.Next() {
					s.pr.examined.Add(1)
					freed += it.Item().EstimatedSize()
					start := len(buf)
					buf = append(buf, it.Item().Key()...)
					keys = append(keys, buf[start:len(buf):len(buf)])
				}
				return nil
			})
			if err != nil || len(keys) == 0 {
				if err != nil {
					return err
				}
				break
			}
			s.pr.txns.Add(1)
			err = s.deleteIn(func(txn *badger.Txn) error {
				var counts countDeltas
				for _, k := range keys {
					if err := s.purgeKey(txn, kind, k, &counts); err != nil {
						return err
					}
				}
				return counts.write(txn)
			})
			if err != nil {
				return err
			}
			s.churned(freed)
			if len(keys) < chunk {
				break
			}
			cursor = append(bytes.Clone(keys[len(keys)-1]), 0) // the next key
			s.pr.pace(start)
		}
	}
	return nil
}

// purgeKey deletes key k of the given kind in txn. A record goes with its
// index entry, read from the record as txn sees it; an index entry goes
// only if it has no record at its version (it is then a leftover: a record
// written after the record pass keeps its entry). Other kinds just go. A
// malformed key or record value does not stop the purge: it goes too (an
// index entry it leaves has no record and goes in the index pass). A
// record deleted is subtracted from counts.
func (s *Store) purgeKey(txn *badger.Txn, kind byte, k []byte, counts *countDeltas) error {
	switch kind {
	case kindRecord:
		lib, model, rest, err := splitModel(k)
		if err != nil || len(rest) != idSize {
			break
		}
		v, _, found, err := recordState(txn, k)
		if errors.Is(err, store.ErrCorrupt) {
			counts.add(lib, model, -1)
			break
		}
		if err != nil || !found {
			return err
		}
		if err := txn.Delete(indexKey(nil, lib, model, v, uuid.UUID(rest))); err != nil {
			return err
		}
		counts.add(lib, model, -1)
	case kindIndex:
		lib, model, rest, err := splitModel(k)
		if err != nil || len(rest) != idSize+hlc.KeySize+idSize {
			break
		}
		v, _ := hlc.FromKey(rest[idSize:])
		cur, _, found, err := recordState(txn, recordKey(nil, lib, model, uuid.UUID(rest[idSize+hlc.KeySize:])))
		if err != nil && !errors.Is(err, store.ErrCorrupt) {
			return err
		}
		if err == nil && found && cur == v {
			return nil // the entry of a record written since the record pass
		}
	}
	return txn.Delete(k)
}
