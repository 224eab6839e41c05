package node

import (
	"sync"

	"github.com/syncnode/syncnode/protocol"
)

// MessageKey names one message type in one direction ("in" or "out").
type MessageKey struct {
	Type      string
	Direction string
}

// MessageCount counts messages and the bytes of their frames.
type MessageCount struct {
	Count, Bytes uint64
}

// wireStats counts the sync protocol's messages by type and direction.
type wireStats struct {
	mu sync.Mutex
	m  map[MessageKey]MessageCount
}

func (w *wireStats) count(dir string, m protocol.Message, frameBytes int) {
	k := MessageKey{Type: m.Name(), Direction: dir}
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[MessageKey]MessageCount)
	}
	c := w.m[k]
	c.Count++
	c.Bytes += uint64(frameBytes)
	w.m[k] = c
	w.mu.Unlock()
}

func (w *wireStats) snapshot() map[MessageKey]MessageCount {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[MessageKey]MessageCount, len(w.m))
	for k, v := range w.m {
		out[k] = v
	}
	return out
}
