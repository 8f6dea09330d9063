package reliability

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is a webhook receiver as a customer would run one: an HTTP
// server per subscription that checks the Standard Webhooks signature of
// every delivery, with the secret the server showed once, and notes which
// change events arrived, how often.
type receiver struct {
	// Delay is how long the receiver takes over each delivery: a slow
	// receiver keeps deliveries pending.
	Delay time.Duration

	mu         sync.Mutex
	deliveries int
	byChange   map[string]int      // change event id → deliveries
	msgIDs     map[string]string   // change event id → its webhook-id
	records    map[string][]string // record key (tenant/sourceId/remoteId) → event types heard
	bad        []string            // deliveries that failed a check
}

func newReceiver() *receiver {
	return &receiver{byChange: map[string]int{}, msgIDs: map[string]string{},
		records: map[string][]string{}}
}

// subscribe starts an HTTP server for tenant tn and subscribes it to every
// change of that tenant on the server of p.
func (rc *receiver) subscribe(t testing.TB, p *process, tn string) {
	t.Helper()
	var secret string
	var ready sync.WaitGroup // deliveries wait until secret is known
	ready.Add(1)
	defer ready.Done()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ready.Wait()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // the server died mid-delivery; it will send it again
		}
		time.Sleep(rc.Delay)
		rc.note(secret, r.Header, body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	resp := p.Post(t, "/v1/webhooks", fmt.Sprintf(`{"url":%q,"eventTypes":["*"],"tenantId":%q}`,
		srv.URL+"/hooks/"+tn, tn))
	resp.WantStatus(t, http.StatusCreated)
	var hook struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(resp.Body, &hook); err != nil || !strings.HasPrefix(hook.Secret, "whsec_") {
		t.Fatalf("webhook created without a whsec_ secret: %s", resp.Body)
	}
	secret = hook.Secret
}

// note checks one delivery and records it.
func (rc *receiver) note(secret string, h http.Header, body []byte) {
	var ev struct {
		ID        string `json:"id"`
		EventType string `json:"eventType"`
		TenantID  string `json:"tenantId"`
		Data      struct {
			SourceID string `json:"sourceId"`
			RemoteID string `json:"remoteId"`
		} `json:"data"`
	}
	err := verifyDelivery(secret, h, body, time.Now())
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.deliveries++
	if err != nil {
		rc.bad = append(rc.bad, err.Error())
		return
	}
	msgID := h.Get("webhook-id")
	if prev, ok := rc.msgIDs[ev.ID]; ok && prev != msgID {
		rc.bad = append(rc.bad, fmt.Sprintf("change %s came as webhook-id %s and %s", ev.ID, prev, msgID))
	}
	rc.msgIDs[ev.ID] = msgID
	rc.byChange[ev.ID]++
	// A tenant webhook also hears its tenant's tenant.* events, which name
	// no record.
	if rc.byChange[ev.ID] == 1 && !strings.HasPrefix(ev.EventType, "tenant.") {
		k := recordKey(ev.TenantID, ev.Data.SourceID, ev.Data.RemoteID)
		rc.records[k] = append(rc.records[k], ev.EventType)
	}
}

// verifyDelivery checks a delivery as the Standard Webhooks libraries do:
// webhook-signature holds "v1," and the base64 HMAC-SHA256 of
// "id.timestamp.body", keyed by the bytes of the secret's base64 part, and
// the timestamp is within 5 minutes of now; x-signature is the hex
// HMAC-SHA256 of the body under the same key. Written here rather than
// taken from package webhook, so that the server's own code is not both
// signing and checking.
func verifyDelivery(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("secret: %v", err)
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return errors.New("no webhook-id or webhook-timestamp")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q: %v", ts, err)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp %s is %v from now", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !slices.ContainsFunc(strings.Fields(h.Get("webhook-signature")), func(s string) bool {
		return hmac.Equal([]byte(s), []byte(want))
	}) {
		return fmt.Errorf("webhook-signature %q does not match", h.Get("webhook-signature"))
	}
	mac = hmac.New(sha256.New, key)
	mac.Write(body)
	if got := h.Get("x-signature"); !hmac.Equal([]byte(got), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		return fmt.Errorf("x-signature %q does not match", got)
	}
	return nil
}

// recordKey names a record across tenants.
func recordKey(tenant, sourceID, remoteID string) string {
	return tenant + "/" + sourceID + "/" + remoteID
}

// heard returns the record keys of every change event received so far.
func (rc *receiver) heard() map[string]bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]bool, len(rc.records))
	for k := range rc.records {
		out[k] = true
	}
	return out
}

// missing returns the keys of want that no change event has named yet.
func (rc *receiver) missing(want []string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, k := range want {
		if _, ok := rc.records[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// waitFor waits up to d until a change event has named every key of want,
// and returns those still missing then.
func (rc *receiver) waitFor(want []string, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		m := rc.missing(want)
		if len(m) == 0 || time.Now().After(deadline) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// receiverStats is what a receiver has seen.
type receiverStats struct {
	Deliveries int // requests received
	Changes    int // distinct change events among them
	Duplicates int // deliveries of a change event after its first
	Bad        []string
}

func (rc *receiver) stats() receiverStats {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s := receiverStats{Deliveries: rc.deliveries, Changes: len(rc.byChange), Bad: slices.Clone(rc.bad)}
	for _, n := range rc.byChange {
		s.Duplicates += n - 1
	}
	return s
}

// check fails the test for every delivery that failed a check.
func (rc *receiver) check(t testing.TB) {
	t.Helper()
	s := rc.stats()
	for i, b := range s.Bad {
		if i == 10 {
			t.Errorf("and %d more bad deliveries", len(s.Bad)-i)
			break
		}
		t.Errorf("bad delivery: %s", b)
	}
}
