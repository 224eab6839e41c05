package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/protocol"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// A peer that lists no frame compression (one that predates it) gets plain
// frames: its session Hello is answered, and its catch-up request is served,
// through a Reader that does not accept compressed frames. The same request
// listing snappy is served in fewer bytes, and reads back the same.
func TestCompressionIsNegotiated(t *testing.T) {
	c := newCluster(t, 1, nil)
	r := newRogueMember(t, c)
	ctx := context.Background()
	const n = 300
	for i := 0; i < n; i++ {
		if _, err := c.library(0).PutOwned(ctx, "location", uuid.New(), data(t, map[string]any{"path": fmt.Sprintf("/volume/photos/%06d.jpg", i), "size": i * 1000})); err != nil {
			t.Fatal(err)
		}
	}
	// A session: the node's Hello comes back plain, listing snappy.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ss, err := r.h.NewStream(sctx, c.nodes[0].Host().ID(), node.ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Reset()
	_ = ss.SetDeadline(time.Now().Add(10 * time.Second))
	if err := protocol.NewWriter(ss, 0).WriteMessage(r.hello(c.lib)); err != nil {
		t.Fatal(err)
	}
	plain := protocol.NewReader(ss, 0)
	first, err := plain.ReadMessage()
	if err != nil {
		t.Fatalf("reading the answer to a Hello without compression: %v", err)
	}
	if h, ok := first.(*protocol.Hello); !ok || !protocol.AcceptsCompression(h.Compression) {
		t.Fatalf("the node answered %+v, want a Hello listing snappy", first)
	}
	// Live pushes to it stay plain, batches too.
	const pushed = 200
	go func() {
		for i := 0; i < pushed; i++ {
			_, _ = c.library(0).PutShared(ctx, "tag", uuid.New(), data(t, map[string]any{"name": fmt.Sprintf("tag %d of a long list of tags", i)}))
		}
	}()
	for seen := 0; seen < pushed; {
		m, err := plain.ReadMessage()
		if err != nil {
			t.Fatalf("reading live pushes plain, after %d changes: %v", seen, err)
		}
		switch m := m.(type) {
		case *protocol.SharedChange:
			seen++
		case *protocol.SharedChangeBatch:
			seen += len(m.Entries)
		}
	}
	request := func(compression []string) (records, bytes int) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := r.h.NewStream(sctx, c.nodes[0].Host().ID(), node.ProtocolID)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset()
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		req := &protocol.StateRequest{LibraryID: c.lib, ModelTypes: []string{"location"}, Limit: 1000, Compression: compression}
		if err := protocol.NewWriter(s, 0).WriteMessage(req); err != nil {
			t.Fatal(err)
		}
		_ = s.CloseWrite()
		cr := &countingReader{r: s}
		rd := protocol.NewReader(bufio.NewReader(cr), 0)
		if compression != nil {
			rd.AcceptCompressed()
		}
		for {
			m, err := rd.ReadMessage()
			if err != nil {
				t.Fatalf("compression %q: reading the response: %v", compression, err)
			}
			resp, ok := m.(*protocol.StateResponse)
			if !ok {
				t.Fatalf("compression %q: got %s, want StateResponse", compression, m.Name())
			}
			records += len(resp.Records)
			if !resp.HasMore {
				return records, cr.n
			}
		}
	}
	plainRecs, plainBytes := request(nil)
	snappyRecs, snappyBytes := request(protocol.Compressions())
	if plainRecs != n || snappyRecs != n {
		t.Fatalf("responses carried %d records plain and %d compressed, want %d", plainRecs, snappyRecs, n)
	}
	if snappyBytes >= plainBytes*9/10 {
		t.Errorf("the response took %d bytes compressed, %d plain: want at least 10%% less", snappyBytes, plainBytes)
	}
	t.Logf("%d records: %d bytes plain, %d with snappy", n, plainBytes, snappyBytes)
}
