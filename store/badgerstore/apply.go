package badgerstore

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
)

// Apply implements store.Store. It validates b, writes its atomic part in one
// Badger transaction (retried on conflict; never split) and returns once that
// is committed. PruneLog, PurgeTombstones and PurgeLibraries run later, in
// the store's pruning goroutine (see prune.go and WaitPruned): Apply only
// hands their marks over, so it returns no error of theirs and never waits
// for them (unless tens of thousands of streams are waiting to be pruned).
func (s *Store) Apply(b *store.Batch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	if atomicPart(b) {
		// One arena for every key and value of the transaction: Badger keeps
		// references to them until commit. Size is an upper bound.
		size := b.Size()
		arena := make([]byte, 0, size)
		err := s.update(func(txn *badger.Txn) error {
			w := writer{txn: txn, arena: arena[:0], filter: s.filter}
			return w.write(b)
		})
		if err != nil {
			return err
		}
		s.pr.wrote(b)
		s.churned(int64(size))
	}
	if len(b.PruneLog) > 0 {
		s.pr.request(kindLog, b.PruneLog)
	}
	if len(b.PurgeTombstones) > 0 {
		s.pr.request(kindIndex, b.PurgeTombstones)
	}
	if len(b.PurgeLibraries) > 0 {
		s.pr.requestPurge(b.PurgeLibraries)
	}
	return nil
}

// atomicPart reports whether b writes anything besides its deletions.
func atomicPart(b *store.Batch) bool {
	c := *b
	c.PruneLog, c.PurgeTombstones, c.PurgeLibraries = nil, nil, nil
	return !c.Empty()
}

// writer writes a batch's atomic part into one transaction.
type writer struct {
	txn *badger.Txn
	// arena holds the keys and values handed to txn; a slice of it is never
	// written again once handed over (growing it moves on to a new array).
	arena []byte
	// filter learns every record key written, before the commit.
	filter *recordFilter
	// counts collects the changes of the record counts (counts.go).
	counts countDeltas
}

// take returns the bytes appended to the arena since start, capped so that
// nobody appends into them.
func (w *writer) take(start int) []byte {
	return w.arena[start:len(w.arena):len(w.arena)]
}

func (w *writer) write(b *store.Batch) error {
	txn := w.txn
	for i := range b.PutRecords {
		var replaced *hlc.HLC
		if b.Replaced != nil {
			replaced = &b.Replaced[i]
		}
		if err := w.putRecord(&b.PutRecords[i], replaced); err != nil {
			return err
		}
	}
	for _, k := range b.DropRecords {
		if err := w.dropRecord(k); err != nil {
			return err
		}
	}
	for i := range b.AppendLog {
		e := &b.AppendLog[i]
		start := len(w.arena)
		w.arena = logKey(w.arena, e)
		key := w.take(start)
		start = len(w.arena)
		w.arena = appendLogValue(w.arena, e)
		if err := txn.Set(key, w.take(start)); err != nil {
			return err
		}
	}
	for _, m := range b.SetWatermarks {
		if err := w.set(streamPrefix(w.arena, kindWatermark, m.Stream), func(dst []byte) []byte { return appendHLCValue(dst, m.HLC) }); err != nil {
			return err
		}
	}
	for i := range b.SetAcks {
		a := &b.SetAcks[i]
		if err := w.set(ackKey(w.arena, a), func(dst []byte) []byte { return appendHLCValue(dst, a.HLC) }); err != nil {
			return err
		}
	}
	for _, p := range b.SetPrunePoints {
		if err := w.set(streamPrefix(w.arena, kindPrune, p.Stream), func(dst []byte) []byte { return appendHLCValue(dst, p.Log, p.Tombstones) }); err != nil {
			return err
		}
	}
	for _, q := range b.PutQuarantine {
		if err := w.set(quarantineKey(w.arena, q.Key()), func(dst []byte) []byte { return appendBytesValue(dst, q.Message) }); err != nil {
			return err
		}
	}
	for _, k := range b.DropQuarantine {
		if err := w.delete(quarantineKey(w.arena, k)); err != nil {
			return err
		}
	}
	if b.ClockBound != 0 {
		if err := w.raiseClock(b.ClockBound); err != nil {
			return err
		}
	}
	for i := range b.PutLibraries {
		l := &b.PutLibraries[i]
		v, err := encodeLibrary(l)
		if err != nil {
			return fmt.Errorf("encoding library %s: %w", l.ID, err)
		}
		if err := w.set(libPrefix(w.arena, kindLibrary, l.ID), func(dst []byte) []byte { return append(dst, v...) }); err != nil {
			return err
		}
	}
	for i := range b.PutMembers {
		m := &b.PutMembers[i]
		v, err := encodeMember(m)
		if err != nil {
			return fmt.Errorf("encoding member %s: %w", m.DeviceID, err)
		}
		if err := w.set(memberKey(w.arena, m.Library, m.DeviceID), func(dst []byte) []byte { return append(dst, v...) }); err != nil {
			return err
		}
	}
	for _, k := range b.DropMembers {
		if err := w.delete(memberKey(w.arena, k.Library, k.DeviceID)); err != nil {
			return err
		}
	}
	for _, id := range b.DropLibraries {
		if err := w.dropLibrary(id); err != nil {
			return err
		}
	}
	for k, v := range b.PutMeta {
		if err := w.set(metaKey(w.arena, k), func(dst []byte) []byte { return appendBytesValue(dst, v) }); err != nil {
			return err
		}
	}
	for _, k := range b.DropMeta {
		if err := w.delete(metaKey(w.arena, k)); err != nil {
			return err
		}
	}
	return w.counts.write(txn)
}

// set stores a key just appended to the arena (extended is the arena with
// the key at its end) and the value value appends.
func (w *writer) set(extended []byte, value func([]byte) []byte) error {
	start := len(w.arena)
	w.arena = extended
	key := w.take(start)
	start = len(w.arena)
	w.arena = value(w.arena)
	return w.txn.Set(key, w.take(start))
}

func (w *writer) delete(extended []byte) error {
	start := len(w.arena)
	w.arena = extended
	return w.txn.Delete(w.take(start))
}

// currentVersion returns the version of the stored record under key (which
// the transaction sees, its own writes included), or ok false.
func (w *writer) currentVersion(key []byte) (v hlc.HLC, ok bool, err error) {
	item, err := w.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	err = item.Value(func(val []byte) error {
		v, err = recordVersion(key, val)
		return err
	})
	return v, err == nil, err
}

// putRecord writes r and moves its index entry from the version r replaces:
// replaced if not nil (zero: none), else the one stored.
func (w *writer) putRecord(r *store.Record, replaced *hlc.HLC) error {
	start := len(w.arena)
	w.arena = recordKey(w.arena, r.Library, r.ModelType, r.ID)
	rk := w.take(start)
	var old hlc.HLC
	var found bool
	if replaced != nil {
		old, found = *replaced, !replaced.IsZero()
	} else {
		var err error
		if old, found, err = w.currentVersion(rk); err != nil {
			return err
		}
	}
	if !found {
		w.counts.add(r.Library, r.ModelType, 1)
	}
	if found && old != r.Version {
		if err := w.delete(indexKey(w.arena, r.Library, r.ModelType, old, r.ID)); err != nil {
			return err
		}
	}
	start = len(w.arena)
	w.arena = appendRecordHead(w.arena, r)
	if w.filter != nil {
		w.filter.add(rk)
	}
	if err := w.txn.Set(rk, w.take(start)); err != nil {
		return err
	}
	// The data goes with the index entry, so that a page of a stream (its
	// index in version order) is read in one pass, without a lookup per
	// record.
	start = len(w.arena)
	w.arena = indexKey(w.arena, r.Library, r.ModelType, r.Version, r.ID)
	ik := w.take(start)
	start = len(w.arena)
	w.arena = append(w.arena, r.Data...)
	return w.txn.SetEntry(badger.NewEntry(ik, w.take(start)).WithMeta(indexV2 | recordFlags(r)))
}

func (w *writer) dropRecord(k store.RecordKey) error {
	start := len(w.arena)
	w.arena = recordKey(w.arena, k.Library, k.ModelType, k.ID)
	rk := w.take(start)
	old, found, err := w.currentVersion(rk)
	if err != nil || !found {
		return err
	}
	w.counts.add(k.Library, k.ModelType, -1)
	if err := w.txn.Delete(rk); err != nil {
		return err
	}
	return w.delete(indexKey(w.arena, k.Library, k.ModelType, old, k.ID))
}

// dropLibrary deletes a library's configuration: its library key and every
// member key (those the transaction sees, its own writes included).
func (w *writer) dropLibrary(id uuid.UUID) error {
	if err := w.delete(libPrefix(w.arena, kindLibrary, id)); err != nil {
		return err
	}
	prefix := libPrefix(nil, kindMember, id)
	var keys [][]byte
	it := w.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
		start := len(w.arena)
		w.arena = append(w.arena, it.Item().Key()...)
		keys = append(keys, w.take(start))
	}
	it.Close()
	// Deleted after the iterator is closed: it reads the transaction's
	// pending writes.
	for _, k := range keys {
		if err := w.txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) raiseClock(bound uint64) error {
	item, err := w.txn.Get(clockKey)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return err
	default:
		var cur uint64
		if err := item.Value(func(v []byte) error {
			var err error
			cur, err = decodeUint64(clockKey, v)
			return err
		}); err != nil {
			return err
		}
		if cur >= bound {
			return nil
		}
	}
	start := len(w.arena)
	w.arena = appendUint64Value(w.arena, bound)
	return w.txn.Set(clockKey, w.take(start))
}
