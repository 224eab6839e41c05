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
package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/syncnode/syncnode/store"
)

// SchemaVersion is the version of the key layout and value encodings this
// package writes. Open refuses a directory with a newer one.
const SchemaVersion = 1

// Options configures a Store. Start from DefaultOptions; a zero numeric field
// takes its default.
type Options struct {
	// SyncWrites makes every Apply fsync before it returns, so that an Apply
	// that returned nil survives power loss. Default true. Safety against a
	// killed process (kill -9) holds either way; see the package comment.
	SyncWrites bool
	// GCInterval is how often the value-log garbage collector runs (each run
	// rewrites value-log files until none is at least half garbage). Default
	// 5 minutes; negative disables it. The Store owns the goroutine and Close
	// stops it.
	GCInterval time.Duration
	// Logger receives Badger's warnings and errors and the store's own. Nil
	// discards them. Badger's informational chatter is never passed on.
	Logger *slog.Logger
	// MemTableSize is the size of one Badger memtable in bytes. Default 64
	// MiB, minimum MinMemTableSize: Badger caps a transaction at 15% of it,
	// and every batch up to store.MaxBatchSize must fit. Memory in use is up
	// to NumMemtables × MemTableSize plus BlockCacheSize plus table indexes.
	MemTableSize int64
	// NumMemtables is how many memtables Badger keeps (one being written,
	// the others waiting to be flushed). Default 3, minimum 1. More absorb
	// longer write bursts at the cost of memory.
	NumMemtables int
	// BlockCacheSize is the size in bytes of the cache of decompressed table
	// blocks. Default 16 MiB, minimum 1 MiB.
	BlockCacheSize int64
	// ValueLogFileSize is the size in bytes of one value-log file, which
	// holds values of 1 MiB and more (smaller ones live in the LSM tree).
	// Default 64 MiB; Badger accepts 1 MiB up to 2 GiB.
	ValueLogFileSize int64
}

// Option defaults and bounds.
const (
	DefaultGCInterval       = 5 * time.Minute
	DefaultMemTableSize     = 64 << 20
	DefaultNumMemtables     = 3
	DefaultBlockCacheSize   = 16 << 20
	DefaultValueLogFileSize = 64 << 20
	// MinMemTableSize is the smallest MemTableSize whose transaction limit
	// (15%) holds store.MaxBatchSize with a margin of 1 MiB.
	MinMemTableSize = (store.MaxBatchSize + 1<<20) * 100 / 15
)

// DefaultOptions returns the options for production: synced writes, GC every
// 5 minutes, small memory (suited to phones and laptops), logs discarded.
func DefaultOptions() Options {
	return Options{
		SyncWrites:       true,
		GCInterval:       DefaultGCInterval,
		MemTableSize:     DefaultMemTableSize,
		NumMemtables:     DefaultNumMemtables,
		BlockCacheSize:   DefaultBlockCacheSize,
		ValueLogFileSize: DefaultValueLogFileSize,
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
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
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
	case o.MemTableSize < MinMemTableSize:
		return o, fmt.Errorf("badgerstore: MemTableSize %d is below the minimum %d (a batch of store.MaxBatchSize must fit)", o.MemTableSize, MinMemTableSize)
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
// conflict detection (a conflicting transaction is retried).
type Store struct {
	db  *badger.DB
	dir string
	log *slog.Logger

	// mu guards closed: every call holds it for reading while it uses db,
	// and Close takes it for writing, so no call ever reaches a closed DB.
	mu     sync.RWMutex
	closed bool

	gcStop chan struct{} // closed by Close; nil when GC is disabled
	gcDone chan struct{} // closed when the GC goroutine has returned
	gcRuns atomic.Int64  // GC ticks completed (a test hook)
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it with mode 0700 if needed) the store in dir. An
// empty directory is initialised with the current SchemaVersion; a directory
// with a newer schema, or with data but no schema version, is refused with
// an error wrapping store.ErrSchema. Open starts the value-log GC goroutine;
// Close stops it.
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
	s := &Store{db: db, dir: dir, log: opts.Logger}
	if err := s.checkSchema(); err != nil {
		db.Close()
		return nil, err
	}
	if opts.GCInterval > 0 {
		s.gcStop, s.gcDone = make(chan struct{}), make(chan struct{})
		go s.runGC(opts.GCInterval)
	}
	return s, nil
}

// badgerOptions returns the Badger options for opts (with defaults filled).
func badgerOptions(dir string, opts Options) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(opts.SyncWrites).
		WithLogger(badgerLogger{opts.Logger}).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(opts.NumMemtables).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithNumCompactors(2).
		WithMetricsEnabled(false)
}

// checkSchema reads the schema version, writing it into an empty database.
func (s *Store) checkSchema() error {
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
	if err != nil && !errors.Is(err, store.ErrSchema) {
		return fmt.Errorf("badgerstore: checking schema version: %w", translate(err))
	}
	return err
}

// Close stops the GC goroutine and closes the database. Later calls return
// store.ErrClosed; a second Close returns nil. Close waits for calls in
// progress to finish.
func (s *Store) Close() error {
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
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("badgerstore: closing: %w", err)
	}
	return nil
}

// gcDiscardRatio is the share of garbage that makes a value-log file worth
// rewriting.
const gcDiscardRatio = 0.5

func (s *Store) runGC(interval time.Duration) {
	defer close(s.gcDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
		}
		for {
			err := s.db.RunValueLogGC(gcDiscardRatio)
			if err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					s.log.Warn("badgerstore: value-log GC", "err", err)
				}
				break
			}
			select {
			case <-s.gcStop:
				return
			default:
			}
		}
		s.gcRuns.Add(1)
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
