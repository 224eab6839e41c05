package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/node/localapi"
)

// candidate is one thing a name on the command line may mean: a library or
// a device, known by its ID and its name.
type candidate struct {
	id, name string
	// also are other exact names for it (a device's peer ID).
	also []string
}

func (c candidate) String() string {
	if c.name == "" {
		return c.id
	}
	return fmt.Sprintf("%s (%s)", c.name, c.id)
}

// match finds what given names among cands: an exact ID (or other exact
// name), else an exact name, else the only ID or name that starts with
// given. It returns the index, or an error that lists the candidates:
// errNoMatch when nothing matches, a usage error when several do.
func match(what, given string, cands []candidate) (int, error) {
	for i, c := range cands {
		if c.id == given || contains(c.also, given) {
			return i, nil
		}
	}
	var named []int
	for i, c := range cands {
		if c.name == given {
			named = append(named, i)
		}
	}
	if len(named) == 1 {
		return named[0], nil
	}
	if len(named) > 1 {
		return -1, usagef("%d %ss are named %q: give the ID (or its first characters): %s", len(named), what, given, listOf(cands, named))
	}
	var prefixed []int
	for i, c := range cands {
		if strings.HasPrefix(c.id, given) || strings.HasPrefix(c.name, given) {
			prefixed = append(prefixed, i)
		}
	}
	switch {
	case len(prefixed) == 1 && given != "":
		return prefixed[0], nil
	case len(prefixed) > 1 && given != "":
		return -1, usagef("%q is the start of %d %ss: %s; give more of it", given, len(prefixed), what, listOf(cands, prefixed))
	}
	all := make([]int, len(cands))
	for i := range cands {
		all[i] = i
	}
	return -1, &noMatchError{what: what, given: given, known: listOf(cands, all)}
}

// noMatchError says that nothing is called what the user gave.
type noMatchError struct{ what, given, known string }

func (e *noMatchError) Error() string {
	if e.known == "" {
		return fmt.Sprintf("no %s %q (there is none)", e.what, e.given)
	}
	return fmt.Sprintf("no %s %q (there are: %s)", e.what, e.given, e.known)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func listOf(cands []candidate, idx []int) string {
	parts := make([]string, len(idx))
	for i, k := range idx {
		parts[i] = cands[k].String()
	}
	return strings.Join(parts, ", ")
}

// libraryFlag adds --library to cmd, with completion of the daemon's
// library names.
func libraryFlag(g *globals, cmd *cobra.Command, lib *string) {
	cmd.Flags().StringVarP(lib, "library", "l", "", "library name or ID, or their first characters (default: the only library; env SYNCNODE_LIBRARY)")
	_ = cmd.RegisterFlagCompletionFunc("library", g.completeLibraries)
}

// resolveLibrary turns --library (an ID, a name, the start of either, or
// nothing when the node holds exactly one library) into a library.
func resolveLibrary(ctx context.Context, c *localapi.Client, given string) (localapi.Library, error) {
	if given == "" {
		given = os.Getenv("SYNCNODE_LIBRARY")
	}
	var libs []localapi.Library
	if err := c.Do(ctx, "GET", "/v1/libraries", nil, &libs); err != nil {
		return localapi.Library{}, err
	}
	cands := make([]candidate, len(libs))
	for i, l := range libs {
		cands[i] = candidate{id: l.ID, name: l.Name}
	}
	if given == "" {
		switch len(libs) {
		case 1:
			return libs[0], nil
		case 0:
			return localapi.Library{}, errors.New("this node holds no library: create one with `syncnode library create NAME` or join one with `syncnode library join CODE`")
		}
		all := make([]int, len(libs))
		for i := range libs {
			all[i] = i
		}
		return localapi.Library{}, usagef("this node holds %d libraries: name one with --library: %s", len(libs), listOf(cands, all))
	}
	i, err := match("library", given, cands)
	if err != nil {
		return localapi.Library{}, err
	}
	return libs[i], nil
}

// resolveDevice turns a device name, ID, peer ID or the start of a name or
// ID into a member of the library.
func resolveDevice(ctx context.Context, c *localapi.Client, lib, given string) (localapi.Member, error) {
	var ms []localapi.Member
	if err := c.Do(ctx, "GET", libPath(lib, "members"), nil, &ms); err != nil {
		return localapi.Member{}, err
	}
	cands := make([]candidate, len(ms))
	for i, m := range ms {
		cands[i] = candidate{id: m.Device, name: m.Name, also: []string{m.Peer}}
	}
	i, err := match("device", given, cands)
	if err != nil {
		return localapi.Member{}, err
	}
	return ms[i], nil
}

func libPath(id string, rest ...string) string {
	p := "/v1/libraries/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// ---- shell completion ----

// completionClient is a client for completion: it must answer fast, and
// say nothing when there is no daemon.
func (g *globals) completionClient(cmd *cobra.Command) (*localapi.Client, context.Context, context.CancelFunc, bool) {
	c, err := g.client(cmd)
	if err != nil {
		return nil, nil, nil, false
	}
	ctx, cancel := context.WithTimeout(ctxOf(cmd), 2*time.Second)
	return c, ctx, cancel, true
}

// completeLibraries completes library names (IDs for libraries whose name
// is not unique on the node).
func (g *globals) completeLibraries(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	c, ctx, cancel, ok := g.completionClient(cmd)
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer cancel()
	var libs []localapi.Library
	if err := c.Do(ctx, "GET", "/v1/libraries", nil, &libs); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	count := map[string]int{}
	for _, l := range libs {
		count[l.Name]++
	}
	var out []string
	for _, l := range libs {
		if count[l.Name] == 1 && l.Name != "" {
			out = append(out, l.Name+"\t"+l.ID)
		} else {
			out = append(out, l.ID+"\t"+l.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeDevices completes the names of the other members of the
// library --library names.
func (g *globals) completeDevices(lib *string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, a []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(a) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, ctx, cancel, ok := g.completionClient(cmd)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		l, err := resolveLibrary(ctx, c, *lib)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var ms []localapi.Member
		if err := c.Do(ctx, "GET", libPath(l.ID, "members"), nil, &ms); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		count := map[string]int{}
		for _, m := range ms {
			count[m.Name]++
		}
		var out []string
		for _, m := range ms {
			if m.Self {
				continue
			}
			if count[m.Name] == 1 && m.Name != "" {
				out = append(out, m.Name+"\t"+m.Device)
			} else {
				out = append(out, m.Device+"\t"+m.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeModels completes the first argument with the daemon's model
// types (writable ones only when forWrite).
func (g *globals) completeModels(forWrite bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, a []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(a) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, ctx, cancel, ok := g.completionClient(cmd)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		var models []localapi.Model
		if err := c.Do(ctx, "GET", "/v1/models", nil, &models); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, m := range models {
			if forWrite && m.Name == "device" {
				continue
			}
			out = append(out, m.Name+"\t"+m.Strategy)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
