package localapi_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/node/localapi"
)

// TestPatchFields: PATCH writes some fields of a shared-fields record (null
// removes one), GET shows each field's version, the event names the fields
// that changed; PATCH of a record-level shared type is refused.
func TestPatchFields(t *testing.T) {
	cfg := node.DefaultLocalConfig()
	cfg.DataDir = t.TempDir()
	reg, err := engine.NewRegistry(
		engine.ModelType{Name: node.DeviceModel, Strategy: engine.Shared},
		engine.ModelType{Name: "tag", Strategy: engine.Shared},
		engine.ModelType{Name: "note", Strategy: engine.SharedFields},
	)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Registry = reg
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	s, err := localapi.New(n, localapi.Config{Addr: "127.0.0.1:0", Token: "test-token-0123456789abcdef"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	c := localapi.NewClient(s.Addr(), "test-token-0123456789abcdef")
	var lib localapi.Library
	if err := c.Do(ctx, "POST", "/v1/libraries", localapi.CreateLibraryRequest{Name: "notes"}, &lib); err != nil {
		t.Fatal(err)
	}
	path := "/v1/libraries/" + lib.ID + "/records/note/6f1c7a52-0d7e-4bb1-9c43-2b54f4c6f0a1"
	var w1, w2 localapi.Written
	events := make(chan localapi.Event, 64)
	evCtx, evCancel := context.WithCancel(ctx)
	defer evCancel()
	go func() { _ = c.Events(evCtx, lib.ID, func(ev localapi.Event) error { events <- ev; return nil }) }()
	// The stream is open once a write shows up in it; write until it does.
	for opened := false; !opened; {
		if err := c.Do(ctx, "PUT", path, json.RawMessage(`{"title":"a","colour":"red","size":3}`), &w1); err != nil {
			t.Fatal(err)
		}
		select {
		case <-events:
			opened = true
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("no event arrived")
		}
	}
	if err := c.Do(ctx, "PATCH", path, json.RawMessage(`{"colour":"blue","size":null}`), &w2); err != nil {
		t.Fatal(err)
	}
	var rec localapi.Record
	if err := c.Do(ctx, "GET", path, nil, &rec); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal(rec.Data, &got)
	if want := map[string]any{"title": "a", "colour": "blue"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after PATCH the note shows %v, want %v", got, want)
	}
	if want := map[string]string{"title": w1.Version, "colour": w2.Version}; !reflect.DeepEqual(rec.Fields, want) {
		t.Fatalf("field versions %v, want %v", rec.Fields, want)
	}
	for {
		select {
		case ev := <-events:
			if ev.Version == w2.Version {
				if !reflect.DeepEqual(ev.Fields, []string{"colour", "size"}) {
					t.Fatalf("the PATCH's event names fields %v, want [colour size]", ev.Fields)
				}
				goto refused
			}
		case <-ctx.Done():
			t.Fatal("no event of the PATCH")
		}
	}
refused:
	err = c.Do(ctx, "PATCH", "/v1/libraries/"+lib.ID+"/records/tag/6f1c7a52-0d7e-4bb1-9c43-2b54f4c6f0a1", json.RawMessage(`{"name":"x"}`), nil)
	if ae, ok := err.(*localapi.APIError); !ok || ae.Status != 400 {
		t.Fatalf("PATCH of a shared tag: %v, want 400", err)
	}
	err = c.Do(ctx, "PATCH", path, json.RawMessage(`[1]`), nil)
	if ae, ok := err.(*localapi.APIError); !ok || ae.Status != 400 {
		t.Fatalf("PATCH with an array: %v, want 400", err)
	}
}
