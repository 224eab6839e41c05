// Package discovery finds the peers a node may sync with: by multicast DNS
// on the local network and by rendezvous in a Kademlia DHT across the
// internet, behind one small interface (Source) that yields peer IDs with
// addresses.
//
// A Service runs the sources its Config turns on, on the node's libp2p host
// (the node's own, or an app's), and hands every peer found to one
// consumer function on one goroutine of its own:
//
//	svc, err := discovery.New(h, discovery.DefaultConfig(), func(p discovery.Peer) {
//		// a member? remember p.Addrs and dial it
//	}, logger)
//	err = svc.Start(ctx)
//	svc.SetNamespaces([]string{pairing.Rendezvous(secret)}) // one per library
//	defer svc.Close()
//
// Sources never block on the consumer: found peers wait in a bounded queue,
// and when it is full they are dropped and counted. The host itself is never
// reported, and a peer announced again with the same addresses within the
// de-duplication window is reported once.
//
// What a source reports is a claim, not a credential: mDNS announcements can
// be sent by anyone on the LAN and DHT provider records by anyone who knows
// the namespace. The consumer decides who to talk to (the node dials members
// only, and libp2p authenticates their peer IDs); the DHT namespaces of
// libraries are derived from their secrets, so strangers cannot find a
// library's members there.
//
// This package imports libp2p only; it knows nothing of libraries or
// stores.
package discovery
