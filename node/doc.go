// Package node runs syncnode: the sync engine (node/engine) driven on a
// libp2p host over a store (Badger by default), speaking
// /spacedrive/sync/2.0.0 with the members of each library.
//
// An app embeds a node in a few lines:
//
//	n, err := node.New(node.Config{DataDir: dir, ...}) // or DefaultConfig()
//	err = n.Start(ctx)                                 // opens the store, the host, the loops
//	defer n.Close()
//	lib, err := n.AddLibrary(ctx, libID, "photos", node.Member{Device: d, Peer: p, Addrs: addrs})
//	v, err := lib.PutShared(ctx, "tag", tagID, cborPayload) // durable when it returns
//	events, err := lib.Subscribe(ctx)                        // changes by this and other devices
//
// An app that already has a libp2p host passes it with WithHost: the node
// registers its protocol next to the app's and leaves the host open on Close.
//
// # How it runs
//
// One goroutine owns the engine. Local writes, frames read from streams and
// ticks reach it as inputs; it runs them in groups whose effects share one
// atomic store batch (so a write returns only once it is durable, and writes
// made in quick succession travel as one batch), then sends the messages the
// engine asks for, opens its catch-up requests and delivers events.
//
// With each member, per library, one long-lived session stream carries the
// Hello exchange, live pushes, acknowledgements and heartbeats; the device
// with the smaller ID opens it, so two devices that find each other at once do
// not race. Its writer drains a bounded queue: when a slow peer fills it, live
// pushes to that peer are dropped, and the gap is closed later by catch-up
// from the store. Catch-up requests use short streams, and every page is
// stored together with the watermark it advances, so an interrupted catch-up
// resumes where it stopped. Every inbound stream is attached to the
// "syncnode" service of libp2p's resource manager, reserves the memory of its
// largest frame, has deadlines, reads size-capped frames, and is answered
// with an Error frame and a reset carrying the wire code on any refusal: a
// peer that is not a member of the library a frame names gets nothing of it.
//
// Members are dialled with capped exponential backoff and jitter, at the
// addresses given with the member or learned from connections, which the
// store remembers. Config.Discovery finds them elsewhere: mDNS on the LAN,
// and the Kademlia DHT, where each library's members advertise and look for
// each other under a name derived from the library's secret
// (pairing.Rendezvous). Found peers that are members are dialled and their
// addresses stored; others are ignored.
package node
