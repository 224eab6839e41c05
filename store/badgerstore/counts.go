package badgerstore

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
)

// Record counts. Counting the records of a library by a scan costs a read of
// every record key (seconds at 10M records), and a joiner's progress needs
// the total at every join. So the store keeps, per library and model type, a
// count of its records (tombstones included) under a key of its own
// (kindCount), changed in the same transaction as the records it counts: by
// Apply (a put of a new record, a drop of a stored one), by the purge of
// tombstones and by the purge of a dropped library. A count that reaches 0
// is deleted. Since schema 3 every store has them; Open counts the records
// of an older one once, as it raises its schema (raiseSchema).
//
// One race makes a count one too low: a put whose Batch.Replaced names a
// tombstone that the pruning goroutine purges after the engine read it and
// before the put commits. The put, told that a record exists, does not read
// it (that read is what Replaced saves), so it does not count the record it
// recreates. The counts feed estimates (a joiner's backfill progress), so
// that is accepted; an exact count would cost a read of every update.

// countDelta is a change of one count within a transaction.
type countDelta struct {
	lib   uuid.UUID
	model string
	delta int64
}

// countDeltas collects the changes of a transaction's counts (usually of one
// or two model types, so a slice searched in order).
type countDeltas []countDelta

func (c *countDeltas) add(lib uuid.UUID, model string, d int64) {
	for i := range *c {
		if e := &(*c)[i]; e.lib == lib && e.model == model {
			e.delta += d
			return
		}
	}
	*c = append(*c, countDelta{lib, model, d})
}

// write adds the deltas to the counts in txn. Reading each count makes
// Badger's conflict detection serialise it with every other transaction
// that changes it.
func (c countDeltas) write(txn *badger.Txn) error {
	for _, e := range c {
		if e.delta == 0 {
			continue
		}
		key := modelPrefix(nil, kindCount, e.lib, e.model)
		n, err := readCount(txn, key)
		if err != nil {
			return err
		}
		// A count is a statistic: one that would go below 0 (a bug) must
		// not stop the writes, so it stops at 0.
		next := int64(n) + e.delta
		switch {
		case next <= 0:
			err = txn.Delete(key)
		default:
			err = txn.Set(key, appendUint64Value(nil, uint64(next)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readCount reads the count under key in txn (0 when there is none).
func readCount(txn *badger.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		n, err = decodeUint64(key, v)
		return err
	})
	return n, err
}

// CountRecords implements store.RecordCounter: it reads one count per model
// type of the library, whatever the number of records.
func (s *Store) CountRecords(library uuid.UUID) (map[string]int, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	out := make(map[string]int)
	err := s.view(func(txn *badger.Txn) error {
		return scan(txn, libPrefix(nil, kindCount, library), true, func(k, v []byte) (bool, error) {
			_, model, rest, err := splitModel(k)
			if err != nil {
				return false, err
			}
			if len(rest) != 0 {
				return false, corruptKey(kindCount, k, "bytes after the model type")
			}
			n, err := decodeUint64(k, v)
			if err != nil {
				return false, err
			}
			out[model] = int(n)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// countAll counts every stored record by a scan of the record keys and
// writes the counts, replacing any. Open calls it as it raises the schema to
// 3, before any other call can write.
func (s *Store) countAll() error {
	var counts countDeltas
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := []byte{kindRecord}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix}) // keys only
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			lib, model, _, err := splitModel(it.Item().Key())
			if err != nil {
				continue // not a record any read finds; the purge of its library deletes it
			}
			counts.add(lib, model, 1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("counting the records: %w", err)
	}
	return s.db.Update(func(txn *badger.Txn) error {
		prefix := []byte{kindCount}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		var old [][]byte
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			old = append(old, it.Item().KeyCopy(nil))
		}
		it.Close()
		for _, k := range old {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return counts.write(txn)
	})
}
