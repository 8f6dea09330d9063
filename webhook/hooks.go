package webhook

import (
	"context"
	"sync"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// hookState is a webhook as the dispatcher uses it: with its receiver and
// its opened secret.
type hookState struct {
	*tenantstore.Webhook
	endpoint  string
	signer    *signer
	secretErr error // why the secret could not be opened, when signer is nil
}

// hookSet is every webhook, by id and by the tenant it hears ("" for the
// platform-wide ones).
type hookSet struct {
	byID     map[string]*hookState
	byTenant map[string][]*hookState
	active   int // the active webhooks
}

// hearing appends to out the active webhooks that hear e: subscribed to
// its tenant (or to every tenant) and its type, made before e (give or take
// createdSlack), and owned by a key that may read it.
func (s *hookSet) hearing(out []*hookState, e *Event) []*hookState {
	for _, list := range [2][]*hookState{s.byTenant[e.TenantID], s.byTenant[""]} {
		for _, h := range list {
			if h.Status == tenantstore.WebhookActive && matchesTypes(h.EventTypes, e.Type) &&
				!e.At.Before(h.CreatedAt.Add(-createdSlack)) && Visible(&h.Owner, e) {
				out = append(out, h)
			}
		}
	}
	return out
}

// hookReload is how often the webhooks are read again although nothing in
// this process changed them: the CLI deleting a tenant deletes its
// webhooks too.
const hookReload = 30 * time.Second

// hookCache holds the webhooks in memory. Changes made through the
// dispatcher invalidate it at once.
type hookCache struct {
	d *Dispatcher

	mu       sync.Mutex
	set      *hookSet
	gen      uint64 // bumped by invalidate
	setGen   uint64 // gen when set was read
	loadedAt time.Time
}

func (c *hookCache) invalidate() {
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
}

// get returns the webhooks, reading them again when they may have changed.
func (c *hookCache) get(ctx context.Context) (*hookSet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set != nil && c.setGen == c.gen && time.Since(c.loadedAt) < hookReload {
		return c.set, nil
	}
	gen := c.gen
	set, err := c.load(ctx)
	if err != nil {
		return nil, err
	}
	c.set, c.setGen, c.loadedAt = set, gen, time.Now()
	return set, nil
}

func (c *hookCache) reload(ctx context.Context) error {
	c.invalidate()
	_, err := c.get(ctx)
	return err
}

// load reads every webhook. Secrets already opened are kept, so that a
// reload costs no decryption for unchanged webhooks.
func (c *hookCache) load(ctx context.Context) (*hookSet, error) {
	list, err := c.d.catalog.Webhooks(ctx, tenantstore.WebhookFilter{})
	if err != nil {
		return nil, err
	}
	set := &hookSet{byID: make(map[string]*hookState, len(list)), byTenant: make(map[string][]*hookState)}
	for _, w := range list {
		h := &hookState{Webhook: w, endpoint: endpointOf(w.URL)}
		if old := c.prev(w.ID); old != nil && old.SealedSecret == w.SealedSecret {
			h.signer, h.secretErr = old.signer, old.secretErr
		} else if secret, err := c.d.box.Open(w.ID, w.SealedSecret); err != nil {
			h.secretErr = err
		} else {
			h.signer, h.secretErr = newSigner(secret)
		}
		set.byID[w.ID] = h
		set.byTenant[w.TenantID] = append(set.byTenant[w.TenantID], h)
		if w.Status == tenantstore.WebhookActive {
			set.active++
		}
	}
	return set, nil
}

// prev returns webhook id as last read, or nil.
func (c *hookCache) prev(id string) *hookState {
	if c.set == nil {
		return nil
	}
	return c.set.byID[id]
}

// ownerTTL is how long a key's state is trusted before it is read again.
const ownerTTL = time.Second

// ownerCache says whether the keys that own webhooks may still be used.
type ownerCache struct {
	catalog *tenantstore.Catalog
	mu      sync.Mutex
	entries map[string]ownerEntry
}

type ownerEntry struct {
	usable bool
	at     time.Time
}

// usable reports whether key id exists and is neither revoked nor expired.
// The empty id is the operator's root key, always usable.
func (c *ownerCache) usable(ctx context.Context, id string) (bool, error) {
	if id == "" {
		return true, nil
	}
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && time.Since(e.at) < ownerTTL {
		return e.usable, nil
	}
	k, err := c.catalog.Key(ctx, id)
	usable := err == nil && k.Usable(time.Now())
	if err != nil && runmerge.ErrorCode(err) != runmerge.ENOTFOUND {
		return false, err
	}
	c.mu.Lock()
	if len(c.entries) > 10000 {
		clear(c.entries)
	}
	c.entries[id] = ownerEntry{usable: usable, at: time.Now()}
	c.mu.Unlock()
	return usable, nil
}
