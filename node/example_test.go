package node_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
)

// Two nodes on this machine share a library; a tag written on one appears on
// the other.
func Example() {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	dir, err := os.MkdirTemp("", "syncnode-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir) // after both nodes closed: defers run last-in first-out
	start := func(name string) *node.Node {
		cfg := node.DefaultLocalConfig() // loopback, fast timers
		cfg.DataDir = filepath.Join(dir, name)
		n, err := node.New(cfg, node.WithLogger(quiet))
		if err != nil {
			log.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			log.Fatal(err)
		}
		return n
	}
	laptop, phone := start("laptop"), start("phone")
	defer laptop.Close()
	defer phone.Close()

	libID := uuid.New()
	members := []node.Member{
		{Device: laptop.Device(), Peer: laptop.Host().ID(), Name: "laptop", Addrs: laptop.Host().Addrs()},
		{Device: phone.Device(), Peer: phone.Host().ID(), Name: "phone", Addrs: phone.Host().Addrs()},
	}
	onLaptop, err := laptop.AddLibrary(ctx, libID, "photos", members...)
	if err != nil {
		log.Fatal(err)
	}
	onPhone, err := phone.AddLibrary(ctx, libID, "photos", members...)
	if err != nil {
		log.Fatal(err)
	}

	tag := uuid.New()
	payload, _ := cbor.Marshal(map[string]string{"name": "holidays"})
	if _, err := onLaptop.PutShared(ctx, "tag", tag, payload); err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if r, err := onPhone.Get(ctx, "tag", tag); err == nil {
			var v map[string]string
			_ = cbor.Unmarshal(r.Data, &v)
			fmt.Println("the phone has tag", v["name"], "written by the laptop:", r.Version.DeviceID == laptop.Device())
			return
		}
	}
	fmt.Println("the tag never arrived")
	// Output: the phone has tag holidays written by the laptop: true
}
