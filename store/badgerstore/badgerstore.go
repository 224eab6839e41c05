// Package badgerstore is the store.Store that keeps a syncnode's data in a
// Badger database in one directory. It has the semantics that store.Mem and
// store/storetest define; keys.go lays out every key and values.go every
// value.
//
// Durability: Apply writes its atomic part in one Badger transaction. With
// Options.SyncWrites (the default) the transaction is fsynced before Apply
// returns, so a nil return survives power loss. Without it, a nil return
// still survives the process being killed (kill -9, a crash, an OOM kill):
// the write is in the operating system's page cache and Badger's write-ahead
// log replays it on the next Open. Either way, a transaction is replayed
// whole or not at all.
//
// Pruning: Apply does not run a batch's PruneLog and PurgeTombstones itself.
// It commits the atomic part (which sets the prune points that make them
// safe), hands the marks to the store's pruning goroutine and returns, as
// store.Batch allows. The goroutine deletes in the background, in
// transactions of at most 1,000 deletions, and each run of a stream starts
// where the previous one of that stream ended (see prune.go). So a read right
// after Apply may still see entries and tombstones the batch asked to delete;
// WaitPruned waits until they are gone and returns the errors of failed runs
// (which are also logged; Apply never returns them). The deletions are not
// durable requests: Close lets waiting ones run for up to a second and
// abandons the rest, and a crash loses them; a later prune of the stream
// (with the same or a higher mark) deletes everything they would have.
package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
)

// SchemaVersion is the version of the key layout and value encodings this
// package writes. Open refuses a directory with a newer one. Schema 2 keeps
// a record's data with its index entry instead of with its record key (see
// values.go); it reads what schema 1 wrote, so Open raises a directory of
// schema 1 to 2 and its records move as they are rewritten. A syncnode of
// schema 1 then refuses the directory instead of misreading it.
//
// Schema 3 adds a count of the records of each library and model type
// (counts.go), which Apply and the purges keep in step with the records:
// Open counts the records of an older directory once and raises it to 3, so
// that a syncnode of schema 2, which would write records without counting
// them, refuses the directory.
const SchemaVersion = 3

// Options configures a Store. Start from DefaultOptions; a zero numeric field
// takes its default.
//
// Memory: Badger, not syncnode, holds nearly all of a store's memory. The
// defaults are sized for phones and laptops. The bulk is the memtables: each
// takes MemTableSize plus about twice Badger's transaction limit (15% of
// MemTableSize) of Go heap for its skip list, and as much again of its
// memory-mapped write-ahead log file as has been written; up to
// NumMemtables + 1 of them exist at once (the one being written, and full
// ones waiting or being flushed). Payloads go to the value log
// (ValueThreshold), so memtables and tables hold keys and value pointers
// only, and a memtable can be small (MinMemTableSize). Flushing a memtable
// builds its table in memory and compactions build smaller tables. Then come
// the block cache (BlockCacheSize), the record filter (about 1.25 bytes per
// record, see filter.go) and the table indexes and Bloom filters, which
// Badger reads in place from the memory-mapped table files (its index cache
// only serves encrypted tables, which this store never writes; it is
// bounded at 4 MiB all the same). The Go collector lets the heap grow to
// twice what is live (GOGC) before it collects the memtables and table
// buffers let go of, unless the process sets a memory limit. Tables and value
// logs are written and read through memory maps, so the RSS also counts the
// pages of the database's files that were touched, which is every page
// written: page cache that the kernel reclaims when memory is short, which
// grows with the database (about 490 bytes per record of 256 bytes).
//
// Measured with BenchmarkIngestRSS (a million records of 256 bytes, in
// pages of 1,000, SyncWrites off): the defaults peak at about 750 MB of RSS,
// of which about 260 MB anonymous (heap) and 490 MB mapped files (350 MB
// value log, 120 MB tables, 16 MB memtable logs); with GOMEMLIMIT=256MiB
// the anonymous part peaks at about 210 MB. The defaults before values left
// the tree (two 60 MiB memtables) peaked at 950 to 1,030 MB, 470 to 570 MB
// anonymous.
type Options struct {
	// SyncWrites makes every Apply fsync before it returns, so that an Apply
	// that returned nil survives power loss. Default true. Safety against a
	// killed process (kill -9) holds either way; see the package comment.
	SyncWrites bool
	// GCInterval is how often the value-log garbage collector runs at the
	// least (each run rewrites value-log files until none is at least half
	// garbage; see collect). It also runs each time Apply and the pruner
	// have written or deleted about a value-log file's worth
	// (ValueLogFileSize) since the last run, so that a busy store's disk
	// stays bounded between ticks. Default 5 minutes; negative disables both.
	// The Store owns the goroutine and Close stops it.
	GCInterval time.Duration
	// Logger receives Badger's warnings and errors and the store's own. Nil
	// discards them. Badger's informational chatter is never passed on.
	Logger *slog.Logger
	// MemTableSize is the size of one Badger memtable in bytes. Default and
	// minimum MinMemTableSize(ValueThreshold) (about 37 MiB for the default
	// ValueThreshold): Badger caps a transaction at 15% of it, and every
	// batch up to store.MaxBatchSize must fit. A larger one costs memory
	// (see above) and buys fewer, larger level-0 tables.
	MemTableSize int64
	// NumMemtables is how many full memtables may wait to be flushed
	// (besides the one being flushed) before writes stall. Default 2,
	// minimum 1. More absorb longer write bursts at the cost of a memtable
	// each (see above).
	NumMemtables int
	// BlockCacheSize is the size in bytes of Badger's cache of table blocks.
	// Default 8 MiB, minimum 1 MiB. Without Compression, blocks are read in
	// place from the memory-mapped table files (the operating system's page
	// cache does the caching), so a large cache buys little; with it, every
	// block read is decompressed into a fresh buffer and the cache saves
	// doing that again.
	BlockCacheSize int64
	// Compression Snappy-compresses table blocks. Default off: record
	// payloads are small CBOR values, often already compressed, so it saves
	// little disk, and it costs CPU, a second buffer for every table being
	// built, and a decompressed copy of every block read. Badger records each
	// table's compression, so a directory written with either setting opens
	// with the other.
	Compression bool
	// ValueLogFileSize is the size in bytes of one value-log file, which
	// holds values of 1 MiB and more (smaller ones live in the LSM tree).
	// Default 64 MiB; Badger accepts 1 MiB up to 2 GiB.
	ValueLogFileSize int64
	// ValueThreshold is the size in bytes from which a value is kept in
	// Badger's value log instead of in its LSM tree, which then holds only
	// the key and a 12-byte pointer. Default 32, from 1 up to
	// MaxValueThreshold: record values (30 bytes of header, then the
	// payload) and log entries go to the value log, watermarks, index
	// entries and other small values stay in the tree. Keeping payloads out
	// of the tree makes memtables, their flushes and compactions carry keys
	// only (compactions no longer rewrite payloads), and makes a
	// transaction's share of a memtable small, so memtables can be smaller
	// (see MinMemTableSize). Reading a payload costs a read of the value log
	// (memory-mapped). Badger decides per value, so a directory written with
	// one threshold opens with any other.
	ValueThreshold int64
}

// Option defaults and bounds.
const (
	DefaultGCInterval       = 5 * time.Minute
	DefaultNumMemtables     = 2
	DefaultBlockCacheSize   = 8 << 20
	DefaultValueLogFileSize = 64 << 20
	DefaultValueThreshold   = 32
	// DefaultMemTableSize is MinMemTableSize(DefaultValueThreshold), about
	// 37 MiB.
	DefaultMemTableSize = (store.MaxBatchSize*(maxFixedKey+DefaultValueThreshold-1+badgerEntryOverhead)/keyCost + batchMargin) * 100 / 15
)

// MinMemTableSize returns the smallest MemTableSize whose transaction
// limits hold any batch up to store.MaxBatchSize for the given
// ValueThreshold, with a margin of 1 MiB (for the members of a dropped
// library beyond those store.Batch.Size charges).
//
// Badger charges each entry of a transaction its key, plus its value and 12
// bytes when the value is below ValueThreshold, else 24 bytes (a value
// pointer and the same 12), and refuses a transaction beyond 15% of
// MemTableSize in these bytes, or beyond that share divided by 96 (its
// largest skiplist node) in entries. store.Batch.Size charges every key the
// store writes or deletes at least keyCost (224) bytes plus the variable
// parts of its key (model type, meta key) and the payload, name or message
// its value holds. The fixed part of a key is at most maxFixedKey (78
// bytes, an index entry) and that of a value at most 57 bytes (a prune
// point), so an entry never costs Badger more than Size charges for it; and
// when values from ValueThreshold on go to the value log, it costs at most
// (78 + max(ValueThreshold+11, 24)) / 224 of it. A batch of Size S has at
// most S/224 entries. The default threshold (32) gives about 37 MiB; 135 and
// more give 60 MiB, the minimum before values left the tree.
func MinMemTableSize(valueThreshold int64) int64 {
	value := max(valueThreshold-1+badgerEntryOverhead, badgerPointer+badgerEntryOverhead)
	bytes := min(int64(store.MaxBatchSize)*(maxFixedKey+value)/keyCost, store.MaxBatchSize) + batchMargin
	entries := int64(store.MaxBatchSize/keyCost + batchMargin/badgerNodeSize)
	return max(bytes, entries*badgerNodeSize) * 100 / 15
}

// Constants of MinMemTableSize.
const (
	keyCost             = 96 + 128 // what store.Batch.Size charges a key at least
	maxFixedKey         = 1 + idSize + 1 + idSize + hlc.KeySize + idSize
	badgerEntryOverhead = 12 // 2 bytes of meta, 10 of version (Badger's txn.checkSize)
	badgerPointer       = 12 // a value-log pointer
	badgerNodeSize      = 96 // skl.MaxNodeSize
	batchMargin         = 1 << 20
)

// indexCacheSize bounds Badger's index cache. Badger uses it only for
// encrypted tables, which this store never writes; see Options.
const indexCacheSize = 4 << 20

// DefaultOptions returns the options for production: synced writes, GC every
// 5 minutes, small memory (suited to phones and laptops: the smallest
// memtables, two of them, no compression, a small block cache), logs
// discarded.
func DefaultOptions() Options {
	return Options{
		SyncWrites:       true,
		GCInterval:       DefaultGCInterval,
		MemTableSize:     DefaultMemTableSize,
		NumMemtables:     DefaultNumMemtables,
		BlockCacheSize:   DefaultBlockCacheSize,
		ValueLogFileSize: DefaultValueLogFileSize,
		ValueThreshold:   DefaultValueThreshold,
	}
}

// withDefaults fills zero fields and checks the rest.
func (o Options) withDefaults() (Options, error) {
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ValueThreshold == 0 {
		o.ValueThreshold = DefaultValueThreshold
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = MinMemTableSize(o.ValueThreshold)
	}
	if o.NumMemtables == 0 {
		o.NumMemtables = DefaultNumMemtables
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = DefaultBlockCacheSize
	}
	if o.ValueLogFileSize == 0 {
		o.ValueLogFileSize = DefaultValueLogFileSize
	}
	switch {
	case o.ValueThreshold < 1 || o.ValueThreshold > 1<<20:
		return o, fmt.Errorf("badgerstore: ValueThreshold %d, want 1 byte up to 1 MiB", o.ValueThreshold)
	case o.MemTableSize < MinMemTableSize(o.ValueThreshold):
		return o, fmt.Errorf("badgerstore: MemTableSize %d is below the minimum %d for ValueThreshold %d (a batch of store.MaxBatchSize must fit)", o.MemTableSize, MinMemTableSize(o.ValueThreshold), o.ValueThreshold)
	case o.NumMemtables < 1:
		return o, fmt.Errorf("badgerstore: NumMemtables %d, want at least 1", o.NumMemtables)
	case o.BlockCacheSize < 1<<20:
		return o, fmt.Errorf("badgerstore: BlockCacheSize %d is below 1 MiB", o.BlockCacheSize)
	case o.ValueLogFileSize < 1<<20 || o.ValueLogFileSize >= 2<<30:
		return o, fmt.Errorf("badgerstore: ValueLogFileSize %d, want 1 MiB up to 2 GiB", o.ValueLogFileSize)
	}
	return o, nil
}

// Store is a store.Store on Badger. It is safe for concurrent use: reads run
// in parallel on snapshots, and concurrent Applies are serialised by Badger's
// conflict detection (a conflicting transaction is retried). A batch with
// Replaced does not read the records it replaces, so that detection does not
// cover them: as store.Batch says, its caller must be the only writer of
// records (the node's engine loop is).
type Store struct {
	db  *badger.DB
	dir string
	log *slog.Logger

	// mu guards closed: every call holds it for reading while it uses db,
	// and Close takes it for writing, so no call ever reaches a closed DB.
	mu     sync.RWMutex
	closed bool

	pr *pruner // runs PruneLog and PurgeTombstones; see prune.go

	filter     *recordFilter // see filter.go
	filterStop chan struct{} // closed by Close
	filterDone chan struct{} // closed when fillFilter has returned, or at Open when loaded
	// filterLoaded: Open loaded the filter saved by the last clean Close
	// instead of scanning (a test hook).
	filterLoaded bool
	stopFilter   sync.Once

	gcStop chan struct{} // closed by Close; nil when GC is disabled
	gcDone chan struct{} // closed when the GC goroutine has returned
	gcKick chan struct{} // one waiting request for a GC run; nil when disabled
	// gcEvery: the bytes written or deleted (churnBytes) that ask for a GC
	// run before the next tick; ValueLogFileSize.
	gcEvery int64
	// churnBytes: bytes written or deleted since the last GC run began.
	churnBytes atomic.Int64
	gcBegun    atomic.Int64 // GC runs begun (a test hook)
	gcRuns     atomic.Int64 // GC runs completed (a test hook)
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.RecordCounter = (*Store)(nil)
	_ store.RecordTallier = (*Store)(nil)
)

// Open opens (creating it with mode 0700 if needed) the store in dir. An
// empty directory is initialised with the current SchemaVersion; a directory
// with a newer schema, or with data but no schema version, is refused with
// an error wrapping store.ErrSchema. Open starts the value-log GC goroutine
// and the pruning goroutine; Close stops them. The record filter is loaded
// from the file the last clean Close saved, or else rebuilt by a scan of
// every record key in the background (see filter.go and filterfile.go).
func Open(dir string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("badgerstore: creating data directory: %w", err)
	}
	db, err := badger.Open(badgerOptions(dir, opts))
	if err != nil {
		return nil, fmt.Errorf("badgerstore: opening %s: %w", dir, err)
	}
	// Before anything writes: the saved record filter is valid only for the
	// database as it was at the last clean Close (see filterfile.go).
	maxVersion := db.MaxVersion()
	s := &Store{db: db, dir: dir, log: opts.Logger, pr: newPruner(),
		filter: newRecordFilter(), filterStop: make(chan struct{}), filterDone: make(chan struct{})}
	if err := s.checkSchema(); err != nil {
		db.Close()
		return nil, err
	}
	loaded, err := s.loadFilter(maxVersion)
	if err != nil {
		s.log.Warn("badgerstore: rebuilding the record filter by a scan", "err", err)
	}
	if loaded {
		s.filterLoaded = true
		close(s.filterDone)
	} else {
		go s.fillFilter(s.filterStop)
	}
	go s.runPruner()
	if opts.GCInterval > 0 {
		s.gcStop, s.gcDone, s.gcKick = make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
		s.gcEvery = opts.ValueLogFileSize
		go s.runGC(opts.GCInterval)
	}
	return s, nil
}

// badgerOptions returns the Badger options for opts (with defaults filled).
func badgerOptions(dir string, opts Options) badger.Options {
	compression := options.None
	if opts.Compression {
		compression = options.Snappy
	}
	return badger.DefaultOptions(dir).
		WithSyncWrites(opts.SyncWrites).
		WithLogger(badgerLogger{opts.Logger}).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(opts.NumMemtables).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithCompression(compression).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithValueThreshold(opts.ValueThreshold).
		WithNumCompactors(2).
		WithMetricsEnabled(false)
}

// checkSchema reads the schema version, writing it into an empty database
// and raising an older one (counting its records for schema 3).
func (s *Store) checkSchema() error {
	raise := false
	err := s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(schemaKey)
		if err == nil {
			var v uint32
			err = item.Value(func(val []byte) error {
				var err error
				v, err = decodeSchema(schemaKey, val)
				return err
			})
			switch {
			case err != nil:
				return fmt.Errorf("%w: data directory %s: %w", store.ErrSchema, s.dir, err)
			case v > SchemaVersion:
				return fmt.Errorf("%w: data directory %s has schema version %d, this syncnode supports up to %d", store.ErrSchema, s.dir, v, SchemaVersion)
			case v == 0:
				return fmt.Errorf("%w: data directory %s has schema version 0, this syncnode supports 1 to %d", store.ErrSchema, s.dir, SchemaVersion)
			case v < SchemaVersion:
				raise = true
			}
			return nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{})
		it.Rewind()
		nonEmpty := it.Valid()
		it.Close()
		if nonEmpty {
			return fmt.Errorf("%w: data directory %s holds data without a schema version (not a syncnode store?), this syncnode supports up to %d", store.ErrSchema, s.dir, SchemaVersion)
		}
		return txn.Set(schemaKey, appendSchemaValue(nil, SchemaVersion))
	})
	if err == nil && raise {
		err = s.raiseSchema()
	}
	if err != nil && !errors.Is(err, store.ErrSchema) {
		return fmt.Errorf("badgerstore: checking schema version: %w", translate(err))
	}
	return err
}

// raiseSchema raises a database of an older schema to SchemaVersion: it
// counts its records (schema 3; a scan of every record key, once), then
// writes the version. A crash in between leaves the old version, and the
// next Open counts again.
func (s *Store) raiseSchema() error {
	if err := s.countAll(); err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(schemaKey, appendSchemaValue(nil, SchemaVersion))
	})
}

// Close stops the pruning and GC goroutines and closes the database. Later
// calls return store.ErrClosed; a second Close returns nil. Close waits for
// calls in progress to finish. Prunes still waiting run for up to a second
// more; the rest are abandoned (see the package comment).
func (s *Store) Close() error {
	// Before taking mu: the pruning goroutine takes it for reading.
	if n := s.pr.stop(); n > 0 {
		s.log.Info("badgerstore: closing with prunes not run; a later prune of their streams deletes what they would have", "abandoned", n)
	}
	s.stopFilter.Do(func() { close(s.filterStop) })
	<-s.filterDone
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.gcStop != nil {
		close(s.gcStop)
		<-s.gcDone
	}
	// Last, with every call shut out: no write can follow the save.
	if err := s.saveFilter(); err != nil {
		s.log.Warn("badgerstore: saving the record filter; the next Open rebuilds it by a scan", "err", err)
	}
	if err := s.db.Close(); err != nil {
		os.Remove(filepath.Join(s.dir, filterFileName))
		return fmt.Errorf("badgerstore: closing: %w", err)
	}
	return nil
}

// Garbage collection. Badger reclaims the space of a deleted or overwritten
// value only when it rewrites the value-log file holding it
// (RunValueLogGC), and it picks a file by the garbage its compactions have
// counted in it. A GC run (collect) rewrites value-log files until none is
// at least gcDiscardRatio garbage, for at most gcMaxRun. A run happens every
// GCInterval, and also whenever Apply and the pruner have written or deleted
// a value-log file's worth of bytes since the last run began (churned), so
// that a store written at a high rate does not gather gigabytes of garbage
// in the five minutes between ticks (BenchmarkHotSet; docs/PERFORMANCE.md).
//
// It does not compact the tree to count the garbage sooner: Badger's
// DB.Flatten (which would bring the deletions of level 0 together with the
// values below, so that the files count as garbage at once) made deleted
// keys come back in BenchmarkHotSet when run while writes and value-log
// rewrites went on (log entries below a prune mark, present again after
// WaitPruned), in Badger v4.9.6. The run does not lower gcDiscardRatio
// either: where compactions have not counted the garbage, no file reaches
// even a low ratio, and where they have, a lower ratio rewrites live data.

const (
	// gcDiscardRatio is the share of garbage that makes a value-log file
	// worth rewriting: value-log files hold at most about twice their live
	// data, besides the file being written.
	gcDiscardRatio = 0.5
	// gcMaxRun bounds the value-log rewrites of one run; a run cut short asks
	// for another.
	gcMaxRun = 30 * time.Second
)

// churned records bytes written or deleted, and asks for a GC run when a
// value-log file's worth has gone by since the last one began.
func (s *Store) churned(bytes int64) {
	if s.gcKick == nil {
		return
	}
	if s.churnBytes.Add(bytes) >= s.gcEvery {
		s.kickGC()
	}
}

// kickGC asks for a GC run without waiting.
func (s *Store) kickGC() {
	select {
	case s.gcKick <- struct{}{}:
	default: // one is waiting already
	}
}

func (s *Store) runGC(interval time.Duration) {
	defer close(s.gcDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
		case <-s.gcKick:
		}
		if !s.collect() {
			return
		}
		s.gcRuns.Add(1)
	}
}

// collect is one GC run (see Garbage collection above). It returns false
// when Close stopped it.
func (s *Store) collect() bool {
	s.gcBegun.Add(1)
	s.churnBytes.Store(0)
	deadline := time.Now().Add(gcMaxRun)
	for {
		err := s.db.RunValueLogGC(gcDiscardRatio)
		if err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				s.log.Warn("badgerstore: value-log GC", "err", err)
			}
			return true
		}
		select {
		case <-s.gcStop:
			return false
		default:
		}
		if time.Now().After(deadline) {
			s.kickGC()
			return true
		}
	}
}

// translate maps Badger's errors to the store's at the boundary. Errors that
// already wrap a store error pass unchanged.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return store.ErrNotFound
	case errors.Is(err, badger.ErrDBClosed), errors.Is(err, badger.ErrBlockedWrites):
		return fmt.Errorf("%w (%v)", store.ErrClosed, err)
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("%w: the batch exceeds Badger's transaction limit (%v); write smaller batches", store.ErrTooBig, err)
	case errors.Is(err, store.ErrCorrupt), errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrSchema),
		errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrTooBig):
		return err
	}
	return fmt.Errorf("badgerstore: %w", err)
}

// view runs fn in one read-only snapshot.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return translate(s.db.View(fn))
}

// maxConflictRetries bounds the retries of a transaction that conflicted
// with a concurrent one.
const maxConflictRetries = 100

// update runs fn in a read-write transaction, retrying on conflict. The
// caller holds s.mu for reading.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	for attempt := 0; ; attempt++ {
		err := s.db.Update(fn)
		if errors.Is(err, badger.ErrConflict) && attempt < maxConflictRetries {
			continue
		}
		return translate(err)
	}
}

// badgerLogger passes Badger's warnings and errors to a slog.Logger.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) logf(level slog.Level, format string, args []any) {
	if b.l.Enabled(context.Background(), level) {
		b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "badger")
	}
}

func (b badgerLogger) Errorf(format string, args ...any)   { b.logf(slog.LevelError, format, args) }
func (b badgerLogger) Warningf(format string, args ...any) { b.logf(slog.LevelWarn, format, args) }
func (b badgerLogger) Infof(string, ...any)                {}
func (b badgerLogger) Debugf(string, ...any)               {}
