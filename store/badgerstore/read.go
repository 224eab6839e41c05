package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
)

// Every read runs in one db.View (one snapshot) and copies what it returns
// out of Badger's buffers, which are valid only inside the transaction.

func validateLibrary(id uuid.UUID) error {
	if id == uuid.Nil {
		return fmt.Errorf("%w: nil library ID", store.ErrInvalid)
	}
	return nil
}

func validateLimit(limit int) error {
	if limit <= 0 {
		return fmt.Errorf("%w: limit %d, want at least 1", store.ErrInvalid, limit)
	}
	return nil
}

// prefetch is how many values an iterator reads ahead, for a page of limit.
func prefetch(limit int) int { return max(1, min(limit, 100)) }

// Record implements store.Reader.
func (s *Store) Record(k store.RecordKey) (store.Record, error) {
	if err := k.Validate(); err != nil {
		return store.Record{}, err
	}
	r := store.Record{Library: k.Library, ModelType: k.ModelType, ID: k.ID}
	key := recordKey(nil, k.Library, k.ModelType, k.ID)
	if s.filter.absent(key) {
		s.mu.RLock()
		closed := s.closed
		s.mu.RUnlock()
		if closed {
			return store.Record{}, store.ErrClosed
		}
		return store.Record{}, store.ErrNotFound
	}
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return readRecord(txn, key, item, &r)
	})
	if err != nil {
		return store.Record{}, err
	}
	return r, nil
}

// List implements store.Reader.
func (s *Store) List(library uuid.UUID, modelType string, after uuid.UUID, limit int) ([]store.Record, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	if err := store.ValidateModelType(modelType); err != nil {
		return nil, err
	}
	if err := validateLimit(limit); err != nil {
		return nil, err
	}
	var out []store.Record
	err := s.view(func(txn *badger.Txn) error {
		prefix := modelPrefix(nil, kindRecord, library, modelType)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: prefetch(limit)})
		defer it.Close()
		seek := successor(append(bytes.Clone(prefix), after[:]...))
		for it.Seek(seek); it.ValidForPrefix(prefix) && len(out) < limit; it.Next() {
			item := it.Item()
			key := item.Key()
			if len(key) != len(prefix)+idSize {
				return corruptKey(kindRecord, key, "wrong length")
			}
			r := store.Record{Library: library, ModelType: modelType, ID: uuid.UUID(key[len(prefix):])}
			if err := readRecord(txn, key, item, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TallyRecords implements store.RecordTallier: it iterates the record keys
// of the model type and reads only their heads (flags and version), which
// stay in the LSM tree below ValueThreshold; the payloads, with the index
// entries in the value log, are never read.
func (s *Store) TallyRecords(library uuid.UUID, modelType string) (live, deleted int, err error) {
	if err := validateLibrary(library); err != nil {
		return 0, 0, err
	}
	if err := store.ValidateModelType(modelType); err != nil {
		return 0, 0, err
	}
	err = s.view(func(txn *badger.Txn) error {
		prefix := modelPrefix(nil, kindRecord, library, modelType)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			key := item.Key()
			if len(key) != len(prefix)+idSize {
				return corruptKey(kindRecord, key, "wrong length")
			}
			var r store.Record
			if err := item.Value(func(v []byte) error {
				_, err := decodeRecord(key, v, &r)
				return err
			}); err != nil {
				return err
			}
			if r.Deleted {
				deleted++
			} else {
				live++
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return live, deleted, nil
}

// readRecord fills r from its record key's item, reading its data from its
// index entry when it is there (format 2).
func readRecord(txn *badger.Txn, key []byte, item *badger.Item, r *store.Record) error {
	var inIndex bool
	err := item.Value(func(v []byte) error {
		var err error
		inIndex, err = decodeRecord(key, v, r)
		return err
	})
	if err != nil || !inIndex {
		return err
	}
	ik := indexKey(nil, r.Library, r.ModelType, r.Version, r.ID)
	ii, err := txn.Get(ik)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return corruptKey(kindRecord, key, fmt.Sprintf("record at %s without its index entry", r.Version))
	}
	if err != nil {
		return err
	}
	if flags, v2, err := indexFlags(ik, ii); err != nil {
		return err
	} else if !v2 || flags != 0 {
		return corruptKey(kindIndex, ik, "index entry of a live record of format 2 is not one of schema 2 for a live record")
	}
	return indexData(ik, ii, r)
}

// marks reads the watermark and prune point of stream s.
func marks(txn *badger.Txn, s store.Stream) (hlc.HLC, store.PrunePoint, error) {
	var w hlc.HLC
	p := store.PrunePoint{Stream: s}
	buf := make([]byte, 0, maxStreamPrefix)
	key := streamPrefix(buf, kindWatermark, s)
	if err := getValue(txn, key, func(v []byte) error { return decodeHLCs(key, v, &w) }); err != nil {
		return w, p, err
	}
	key = streamPrefix(nil, kindPrune, s)
	if err := getValue(txn, key, func(v []byte) error { return decodeHLCs(key, v, &p.Log, &p.Tombstones) }); err != nil {
		return w, p, err
	}
	return w, p, nil
}

// getValue calls fn with the value under key, or does nothing when there is
// none.
func getValue(txn *badger.Txn, key []byte, fn func(v []byte) error) error {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return item.Value(fn)
}

// StatePage implements store.Reader. It walks the stream's index from after,
// which holds each record's data (schema 2); an entry of schema 1 has only
// flags, and its record is read by its key.
func (s *Store) StatePage(st store.Stream, after hlc.HLC, limit int) (store.StatePage, error) {
	if err := st.Validate(); err != nil {
		return store.StatePage{}, err
	}
	if err := validateLimit(limit); err != nil {
		return store.StatePage{}, err
	}
	var page store.StatePage
	err := s.view(func(txn *badger.Txn) error {
		var err error
		if page.Watermark, page.PrunePoint, err = marks(txn, st); err != nil {
			return err
		}
		prefix := streamPrefix(nil, kindIndex, st)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: prefetch(limit)})
		defer it.Close()
		rk := make([]byte, 0, maxStreamPrefix)
		for it.Seek(successor(after.AppendKey(bytes.Clone(prefix)))); it.ValidForPrefix(prefix) && len(page.Records) < limit; it.Next() {
			item := it.Item()
			key := item.Key()
			if len(key) != len(prefix)+hlc.KeySize+idSize {
				return corruptKey(kindIndex, key, "wrong length")
			}
			v, _ := hlc.FromKey(key[len(prefix):])
			r := store.Record{Library: st.Library, ModelType: st.ModelType, ID: uuid.UUID(key[len(prefix)+hlc.KeySize:])}
			flags, v2, err := indexFlags(key, item)
			if err != nil {
				return err
			}
			if v2 {
				r.Version, r.Deleted = v, flags&flagTombstone != 0
				if err := indexData(key, item, &r); err != nil {
					return err
				}
				page.Records = append(page.Records, r)
				continue
			}
			rk = recordKey(rk[:0], r.Library, r.ModelType, r.ID)
			ri, err := txn.Get(rk)
			if errors.Is(err, badger.ErrKeyNotFound) {
				return corruptKey(kindIndex, key, "index entry of a missing record")
			}
			if err != nil {
				return err
			}
			if err := readRecord(txn, rk, ri, &r); err != nil {
				return err
			}
			if r.Version != v {
				return corruptKey(kindIndex, key, fmt.Sprintf("index entry at version %s, record at %s", v, r.Version))
			}
			page.Records = append(page.Records, r)
		}
		return nil
	})
	if err != nil {
		return store.StatePage{}, err
	}
	return page, nil
}

// LogPage implements store.Reader.
func (s *Store) LogPage(st store.Stream, after hlc.HLC, limit int) (store.LogPage, error) {
	if err := st.Validate(); err != nil {
		return store.LogPage{}, err
	}
	if err := validateLimit(limit); err != nil {
		return store.LogPage{}, err
	}
	var page store.LogPage
	err := s.view(func(txn *badger.Txn) error {
		var err error
		if page.Watermark, page.PrunePoint, err = marks(txn, st); err != nil {
			return err
		}
		prefix := streamPrefix(nil, kindLog, st)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: prefetch(limit)})
		defer it.Close()
		for it.Seek(successor(after.AppendKey(bytes.Clone(prefix)))); it.ValidForPrefix(prefix) && len(page.Entries) < limit; it.Next() {
			item := it.Item()
			key := item.Key()
			if len(key) != len(prefix)+hlc.KeySize {
				return corruptKey(kindLog, key, "wrong length")
			}
			e := store.LogEntry{Library: st.Library, ModelType: st.ModelType}
			e.HLC, _ = hlc.FromKey(key[len(prefix):])
			if err := item.Value(func(v []byte) error { return decodeLogValue(key, v, &e) }); err != nil {
				return err
			}
			page.Entries = append(page.Entries, e)
		}
		return nil
	})
	if err != nil {
		return store.LogPage{}, err
	}
	return page, nil
}

// streamKinds are the key kinds whose presence makes a stream.
var streamKinds = []byte{kindIndex, kindLog, kindWatermark, kindPrune}

// Streams implements store.Reader. It skip-scans each kind: after the first
// key of a stream it seeks past every other key of that stream, so it costs
// one seek per stream and kind, not one step per key.
func (s *Store) Streams(library uuid.UUID) ([]store.Stream, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	var out []store.Stream
	err := s.view(func(txn *badger.Txn) error {
		for _, kind := range streamKinds {
			prefix := libPrefix(nil, kind, library)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			seek := bytes.Clone(prefix)
			for it.Seek(seek); it.ValidForPrefix(prefix); it.Seek(seek) {
				key := it.Item().Key()
				lib, model, rest, err := splitModel(key)
				if err != nil || len(rest) < idSize {
					it.Close()
					if err == nil {
						err = corruptKey(kind, key, "no origin")
					}
					return err
				}
				st := store.Stream{Library: lib, ModelType: model, Origin: uuid.UUID(rest[:idSize])}
				out = append(out, st)
				seek = successor(streamPrefix(seek[:0], kind, st))
				if seek == nil {
					break
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sortStreams(out), nil
}

// sortStreams orders streams by model type then origin and drops duplicates.
func sortStreams(ss []store.Stream) []store.Stream {
	cmp := func(a, b store.Stream) int {
		if c := strings.Compare(a.ModelType, b.ModelType); c != 0 {
			return c
		}
		return bytes.Compare(a.Origin[:], b.Origin[:])
	}
	slices.SortFunc(ss, cmp)
	out := ss[:0]
	for i, st := range ss {
		if i == 0 || st != ss[i-1] {
			out = append(out, st)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Watermark implements store.Reader.
func (s *Store) Watermark(st store.Stream) (hlc.HLC, error) {
	if err := st.Validate(); err != nil {
		return hlc.HLC{}, err
	}
	var w hlc.HLC
	err := s.view(func(txn *badger.Txn) error {
		key := streamPrefix(nil, kindWatermark, st)
		return getValue(txn, key, func(v []byte) error { return decodeHLCs(key, v, &w) })
	})
	return w, err
}

// scan calls fn on each key with prefix, in key order, and its value (nil
// unless values), until fn returns false or an error. Both slices are
// Badger's: valid only during the call.
func scan(txn *badger.Txn, prefix []byte, values bool, fn func(key, v []byte) (bool, error)) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: values, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		key := item.Key()
		var more bool
		var err error
		if values {
			err = item.Value(func(v []byte) error {
				more, err = fn(key, v)
				return err
			})
		} else {
			more, err = fn(key, nil)
		}
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	return nil
}

// Watermarks implements store.Reader.
func (s *Store) Watermarks(library uuid.UUID) ([]store.Mark, error) {
	return readStreams(s, library, kindWatermark, 0, func(st store.Stream, _, key, v []byte) (store.Mark, error) {
		m := store.Mark{Stream: st}
		return m, decodeHLCs(key, v, &m.HLC)
	})
}

// Acks implements store.Reader.
func (s *Store) Acks(library uuid.UUID) ([]store.Ack, error) {
	return readStreams(s, library, kindAck, idSize, func(st store.Stream, rest, key, v []byte) (store.Ack, error) {
		a := store.Ack{Stream: st, Member: uuid.UUID(rest)}
		return a, decodeHLCs(key, v, &a.HLC)
	})
}

// PrunePoints implements store.Reader.
func (s *Store) PrunePoints(library uuid.UUID) ([]store.PrunePoint, error) {
	return readStreams(s, library, kindPrune, 0, func(st store.Stream, _, key, v []byte) (store.PrunePoint, error) {
		p := store.PrunePoint{Stream: st}
		return p, decodeHLCs(key, v, &p.Log, &p.Tombstones)
	})
}

// readStreams reads every per-stream entry of one kind of a library, in key
// order: each key is a stream key followed by extra bytes (rest), decoded
// with its value by decode.
func readStreams[T any](s *Store, library uuid.UUID, kind byte, extra int, decode func(st store.Stream, rest, key, v []byte) (T, error)) ([]T, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	var out []T
	err := s.view(func(txn *badger.Txn) error {
		return scan(txn, libPrefix(nil, kind, library), true, func(key, v []byte) (bool, error) {
			st, rest, err := parseStreamKey(key, extra)
			if err != nil {
				return false, err
			}
			e, err := decode(st, rest, key, v)
			if err != nil {
				return false, err
			}
			out = append(out, e)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const quarantineKeySize = 1 + idSize + hlc.KeySize + idSize

// Quarantined implements store.Reader.
func (s *Store) Quarantined(library uuid.UUID, limit int) ([]store.Quarantined, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	if err := validateLimit(limit); err != nil {
		return nil, err
	}
	var out []store.Quarantined
	err := s.view(func(txn *badger.Txn) error {
		return scan(txn, libPrefix(nil, kindQuarantine, library), true, func(key, v []byte) (bool, error) {
			if len(key) != quarantineKeySize {
				return false, corruptKey(kindQuarantine, key, "wrong length")
			}
			q := store.Quarantined{Library: library, From: uuid.UUID(key[1+idSize+hlc.KeySize:])}
			q.HLC, _ = hlc.FromKey(key[1+idSize:])
			var err error
			if q.Message, err = decodeBytesValue(key, v); err != nil {
				return false, err
			}
			out = append(out, q)
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CountQuarantined implements store.Reader. It counts keys without reading
// values.
func (s *Store) CountQuarantined(library uuid.UUID) (int, error) {
	if err := validateLibrary(library); err != nil {
		return 0, err
	}
	n := 0
	err := s.view(func(txn *badger.Txn) error {
		return scan(txn, libPrefix(nil, kindQuarantine, library), false, func([]byte, []byte) (bool, error) {
			n++
			return true, nil
		})
	})
	return n, err
}

// CountLog implements store.Reader: a scan of the library's log keys,
// values not read.
func (s *Store) CountLog(library uuid.UUID) (int, error) {
	if err := validateLibrary(library); err != nil {
		return 0, err
	}
	n := 0
	err := s.view(func(txn *badger.Txn) error {
		return scan(txn, libPrefix(nil, kindLog, library), false, func([]byte, []byte) (bool, error) {
			n++
			return true, nil
		})
	})
	return n, err
}

// ClockBound implements store.Reader.
func (s *Store) ClockBound() (uint64, error) {
	var c uint64
	err := s.view(func(txn *badger.Txn) error {
		return getValue(txn, clockKey, func(v []byte) error {
			var err error
			c, err = decodeUint64(clockKey, v)
			return err
		})
	})
	return c, err
}

// Libraries implements store.Reader.
func (s *Store) Libraries() ([]store.Library, error) {
	var out []store.Library
	err := s.view(func(txn *badger.Txn) error {
		return scan(txn, []byte{kindLibrary}, true, func(key, v []byte) (bool, error) {
			if len(key) != 1+idSize {
				return false, corruptKey(kindLibrary, key, "wrong length")
			}
			l := store.Library{ID: uuid.UUID(key[1:])}
			if err := decodeLibrary(key, v, &l); err != nil {
				return false, err
			}
			out = append(out, l)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Members implements store.Reader.
func (s *Store) Members(library uuid.UUID) ([]store.Member, error) {
	if err := validateLibrary(library); err != nil {
		return nil, err
	}
	var out []store.Member
	err := s.view(func(txn *badger.Txn) error {
		return scan(txn, libPrefix(nil, kindMember, library), true, func(key, v []byte) (bool, error) {
			if len(key) != 1+2*idSize {
				return false, corruptKey(kindMember, key, "wrong length")
			}
			m := store.Member{Library: library, DeviceID: uuid.UUID(key[1+idSize:])}
			if err := decodeMember(key, v, &m); err != nil {
				return false, err
			}
			out = append(out, m)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Meta implements store.Reader.
func (s *Store) Meta(k string) ([]byte, error) {
	if k == "" || len(k) > store.MaxMetaKeyLen {
		return nil, fmt.Errorf("%w: meta key of %d bytes, want 1 to %d", store.ErrInvalid, len(k), store.MaxMetaKeyLen)
	}
	var out []byte
	err := s.view(func(txn *badger.Txn) error {
		key := metaKey(nil, k)
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			var err error
			out, err = decodeBytesValue(key, v)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
