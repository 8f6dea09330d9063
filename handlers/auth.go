package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// authenticator turns key secrets into principals, and knows the tenants
// they work on. Keys seen recently are
// cached by hash, so that a request with a known key costs a hash and a map
// lookup. The cache is emptied whenever a key changes in this process, and
// within a poll interval when the catalog changes under it (the CLI
// revoking a key, say), so revocation takes effect at once.
type authenticator struct {
	catalog     *tenantstore.Catalog
	log         *slog.Logger
	rootKeyHash [sha256.Size]byte
	hasRootKey  bool

	cache *lru.Cache[string, *runmerge.Key] // by hex hash

	// tenants caches tenants by id, so that the check that a data
	// request's tenant exists and is not suspended costs no query. It is
	// emptied with the key cache.
	tenants *lru.Cache[string, *runmerge.Tenant]

	// gen counts the times the cache was emptied. A lookup that started
	// before the latest forget may have read a key as it was before a
	// revocation, and must not put it back in the cache; cacheMu makes the
	// check and the add one step against forget.
	cacheMu sync.Mutex
	gen     uint64

	mu   sync.Mutex
	used map[string]time.Time // key id → last use not yet recorded

	stop chan struct{}
	done chan struct{}
}

// authPollInterval is how often the catalog is checked for changes made
// by other processes, and last-used times are written.
const authPollInterval = time.Second

func newAuthenticator(catalog *tenantstore.Catalog, rootKey string, log *slog.Logger) *authenticator {
	cache, _ := lru.New[string, *runmerge.Key](10000)
	tenants, _ := lru.New[string, *runmerge.Tenant](10000)
	a := &authenticator{
		catalog: catalog,
		log:     log,
		cache:   cache,
		tenants: tenants,
		used:    make(map[string]time.Time),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if rootKey != "" {
		a.rootKeyHash = sha256.Sum256([]byte(rootKey))
		a.hasRootKey = true
	}
	go a.watch()
	return a
}

// principal resolves a key secret, or returns errUnauthorized.
func (a *authenticator) principal(ctx context.Context, secret string) (*runmerge.Principal, error) {
	sum := sha256.Sum256([]byte(secret))
	if a.hasRootKey && subtle.ConstantTimeCompare(sum[:], a.rootKeyHash[:]) == 1 {
		return &runmerge.Principal{Role: runmerge.RoleAdmin}, nil
	}
	if !runmerge.WellFormedKeySecret(secret) {
		return nil, errUnauthorized
	}
	hash := hex.EncodeToString(sum[:])
	k, ok := a.cache.Get(hash)
	if !ok {
		a.cacheMu.Lock()
		gen := a.gen
		a.cacheMu.Unlock()
		var err error
		k, err = a.catalog.KeyByHash(ctx, hash)
		if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
			return nil, errUnauthorized
		} else if err != nil {
			return nil, err
		}
		a.cacheMu.Lock()
		if a.gen == gen {
			a.cache.Add(hash, k)
		}
		a.cacheMu.Unlock()
	}
	now := time.Now()
	if !k.Usable(now) {
		return nil, errUnauthorized
	}
	a.mu.Lock()
	a.used[k.ID] = now
	a.mu.Unlock()
	return &runmerge.Principal{KeyID: k.ID, TenantID: k.TenantID, Role: k.Role, EventIDs: k.EventIDs,
		ExpiresAt: k.ExpiresAt}, nil
}

// stillValid reports whether the key behind p may still be used, for
// long-lived requests such as streams.
func (a *authenticator) stillValid(ctx context.Context, p *runmerge.Principal) bool {
	if p.KeyID == "" {
		return true // the root key lives in the configuration
	}
	k, err := a.catalog.Key(ctx, p.KeyID)
	return err == nil && k.Usable(time.Now())
}

// forget empties the cache after a key changed, in this process or, seen
// by watch, in another.
func (a *authenticator) forget() {
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	a.gen++
	a.cache.Purge()
	a.tenants.Purge()
}

// tenant returns tenant id from the cache or the catalog.
func (a *authenticator) tenant(ctx context.Context, id string) (*runmerge.Tenant, error) {
	if t, ok := a.tenants.Get(id); ok {
		return t, nil
	}
	a.cacheMu.Lock()
	gen := a.gen
	a.cacheMu.Unlock()
	t, err := a.catalog.Tenant(ctx, id)
	if err != nil {
		return nil, err
	}
	a.cacheMu.Lock()
	if a.gen == gen {
		a.tenants.Add(id, t)
	}
	a.cacheMu.Unlock()
	return t, nil
}

// watch empties the cache whenever the catalog changes and writes
// last-used times, until close.
func (a *authenticator) watch() {
	defer close(a.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-a.stop
		cancel()
	}()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := a.catalog.Watch(ctx, authPollInterval, a.forget); err != nil {
				// Without the watch, cached keys could outlive a revocation
				// made elsewhere: stop trusting the cache until it is back.
				a.forget()
				a.log.Warn("watch catalog for key changes", "error", err)
				select {
				case <-ctx.Done():
				case <-time.After(authPollInterval):
				}
			}
		}
	}()

	t := time.NewTicker(10 * authPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			a.flushUsed()
			return
		case <-t.C:
			a.flushUsed()
		}
	}
}

func (a *authenticator) flushUsed() {
	a.mu.Lock()
	used := a.used
	a.used = make(map[string]time.Time)
	a.mu.Unlock()
	if err := a.catalog.TouchKeys(context.Background(), used); err != nil {
		a.log.Warn("record key use", "error", err)
	}
}

func (a *authenticator) close() {
	close(a.stop)
	<-a.done
}

// limiter is the per-key request rate limit: a token bucket per key.
type limiter struct {
	perSecond rate.Limit
	burst     int
	buckets   *lru.Cache[string, *rate.Limiter]
}

func newLimiter(perSecond float64, burst int) *limiter {
	if perSecond <= 0 {
		return nil
	}
	if burst < 1 {
		burst = int(math.Ceil(perSecond))
	}
	buckets, _ := lru.New[string, *rate.Limiter](100000)
	return &limiter{perSecond: rate.Limit(perSecond), burst: burst, buckets: buckets}
}

// allow takes a token for key, or returns how long until one is free.
func (l *limiter) allow(key string) (bool, time.Duration) {
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.perSecond, l.burst)
		if prev, found, _ := l.buckets.PeekOrAdd(key, b); found {
			b = prev
		}
	}
	r := b.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// rateLimit answers 429, with Retry-After in whole seconds, to a key over
// its request rate.
func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := principalOf(c)
		if s.limiter == nil || p == nil {
			return next(c)
		}
		key := p.KeyID
		if key == "" {
			key = "root"
		}
		if ok, wait := s.limiter.allow(key); !ok {
			c.Set(ctxRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			return runmerge.Errorf(runmerge.ERATELIMIT, "too many requests for this key; retry later")
		}
		return next(c)
	}
}
