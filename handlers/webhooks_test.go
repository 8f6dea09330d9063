package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/webhook"
)

// hookReceiver is a real HTTP receiver that verifies every delivery's
// signatures with the secrets it knows and records what it accepted.
type hookReceiver struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	secrets  []string
	got      []received
	bad      []string
	respond  func(r received) int // nil: 204
	accepted chan received
}

// received is one delivery a receiver got.
type received struct {
	WebhookID string
	Event     changeEvent
	At        time.Time
}

func newHookReceiver(t testing.TB) *hookReceiver {
	h := &hookReceiver{t: t, accepted: make(chan received, 1<<16)}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) URL() string { return h.srv.URL + "/hook" }

func (h *hookReceiver) addSecret(s string) {
	h.mu.Lock()
	h.secrets = append(h.secrets, s)
	h.mu.Unlock()
}

func (h *hookReceiver) setRespond(f func(received) int) {
	h.mu.Lock()
	h.respond = f
	h.mu.Unlock()
}

func (h *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r := received{WebhookID: req.Header.Get("webhook-id"), At: time.Now()}
	h.mu.Lock()
	secrets, respond := h.secrets, h.respond
	h.mu.Unlock()
	ok := false
	for _, s := range secrets {
		err := webhook.Verify(s, r.WebhookID, req.Header.Get("webhook-timestamp"),
			req.Header.Get("webhook-signature"), body, time.Now(), 5*time.Minute)
		bodySig, _ := webhook.BodySignature(s, body)
		if err == nil && bodySig == req.Header.Get("x-signature") {
			ok = true
		}
	}
	jerr := json.Unmarshal(body, &r.Event)
	if !ok || jerr != nil || r.WebhookID == "" {
		h.mu.Lock()
		h.bad = append(h.bad, "unverified delivery "+r.WebhookID+": "+string(body))
		h.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	status := http.StatusNoContent
	if respond != nil {
		status = respond(r)
	}
	if status >= 200 && status < 300 {
		h.mu.Lock()
		h.got = append(h.got, r)
		h.mu.Unlock()
		h.accepted <- r
	}
	w.WriteHeader(status)
	// Something a careless server might show back to its caller.
	io.WriteString(w, "receiver-secret-body")
}

func (h *hookReceiver) deliveries() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.got...)
}

// check fails the test for every delivery that did not verify.
func (h *hookReceiver) check() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.bad {
		h.t.Error(b)
	}
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebhookAPI walks the webhook routes with the keys of API.md section 2:
// who may create, see, change and delete which subscription, what a body
// may not set, and that the secret shows only in the answer to create.
func TestWebhookAPI(t *testing.T) {
	a := startChangeAPI(t, "", changeOptions{})
	a.tenant("acme")
	a.tenant("globex")
	_, acmeAdmin := a.key("acme", runmerge.RoleAdmin)
	_, acmeReader := a.key("acme", runmerge.RoleReadOnly)
	_, globexAdmin := a.key("globex", runmerge.RoleAdmin)
	_, platformReader := a.key("", runmerge.RoleReadOnly)
	recv := newHookReceiver(t)

	var bodies []string
	do := func(want int, method, path, key, body string) []byte {
		t.Helper()
		b := a.must(want, method, path, key, body)
		bodies = append(bodies, string(b))
		return b
	}

	created := do(201, "POST", "/v1/webhooks", acmeAdmin,
		`{"url":"`+recv.URL()+`","eventTypes":["person.created"],"description":"CRM sync"}`)
	var w struct {
		ID         string   `json:"id"`
		TenantID   *string  `json:"tenantId"`
		URL        string   `json:"url"`
		EventTypes []string `json:"eventTypes"`
		Status     string   `json:"status"`
		Secret     string   `json:"secret"`
	}
	json.Unmarshal(created, &w)
	if !strings.HasPrefix(w.Secret, "whsec_") || w.TenantID == nil || *w.TenantID != "acme" ||
		w.Status != "active" || w.URL != recv.URL() {
		t.Fatalf("created webhook %s", created)
	}
	secret := w.Secret
	bodies = bodies[:0] // the one answer allowed to hold the secret

	platformHook := a.webhook(a.RootKey, `{"url":"`+recv.URL()+`","eventTypes":["*"]}`)
	for _, tc := range []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"server field id", acmeAdmin, `{"id":"x","url":"` + recv.URL() + `","eventTypes":["*"]}`, 422, "read_only_field"},
		{"server field secret", acmeAdmin, `{"secret":"whsec_x","url":"` + recv.URL() + `","eventTypes":["*"]}`, 422, "read_only_field"},
		{"server field status", acmeAdmin, `{"status":"active","url":"` + recv.URL() + `","eventTypes":["*"]}`, 422, "read_only_field"},
		{"unknown field", acmeAdmin, `{"owner":"me","url":"` + recv.URL() + `","eventTypes":["*"]}`, 422, "unknown_field"},
		{"no url", acmeAdmin, `{"eventTypes":["*"]}`, 422, "validation_failed"},
		{"no event types", acmeAdmin, `{"url":"` + recv.URL() + `"}`, 422, "validation_failed"},
		{"empty event types", acmeAdmin, `{"url":"` + recv.URL() + `","eventTypes":[]}`, 422, "validation_failed"},
		{"unknown event type", acmeAdmin, `{"url":"` + recv.URL() + `","eventTypes":["person.exploded"]}`, 422, "validation_failed"},
		{"event types not strings", acmeAdmin, `{"url":"` + recv.URL() + `","eventTypes":[1]}`, 422, "validation_failed"},
		{"another tenant", acmeAdmin, `{"tenantId":"globex","url":"` + recv.URL() + `","eventTypes":["*"]}`, 404, "not_found"},
		{"read-only key", acmeReader, `{"url":"` + recv.URL() + `","eventTypes":["*"]}`, 403, "forbidden"},
		{"platform reader", platformReader, `{"url":"` + recv.URL() + `","eventTypes":["*"]}`, 403, "forbidden"},
		{"no such tenant", a.RootKey, `{"tenantId":"nope","url":"` + recv.URL() + `","eventTypes":["*"]}`, 404, "not_found"},
		{"not json", acmeAdmin, `{"url":`, 400, "invalid_json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := a.do("POST", "/v1/webhooks", tc.key, tc.body)
			bodies = append(bodies, string(b))
			var p struct{ Code string }
			json.Unmarshal(b, &p)
			if status != tc.status || p.Code != tc.code {
				t.Errorf("%d %s, want %d %s", status, b, tc.status, tc.code)
			}
		})
	}

	// Who sees what.
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	json.Unmarshal(do(200, "GET", "/v1/webhooks", acmeAdmin, ""), &list)
	if len(list.Data) != 1 || list.Data[0].ID != w.ID {
		t.Errorf("acme admin lists %+v", list.Data)
	}
	json.Unmarshal(do(200, "GET", "/v1/webhooks", platformReader, ""), &list)
	if len(list.Data) != 2 {
		t.Errorf("platform reader lists %+v", list.Data)
	}
	json.Unmarshal(do(200, "GET", "/v1/webhooks?tenantId=acme", a.RootKey, ""), &list)
	if len(list.Data) != 1 || list.Data[0].ID != w.ID {
		t.Errorf("platform list of acme %+v", list.Data)
	}
	json.Unmarshal(do(200, "GET", "/v1/webhooks", globexAdmin, ""), &list)
	if len(list.Data) != 0 {
		t.Errorf("globex admin lists %+v", list.Data)
	}
	do(404, "GET", "/v1/webhooks/"+w.ID, globexAdmin, "")
	do(404, "GET", "/v1/webhooks/"+platformHook.ID, acmeAdmin, "")
	do(404, "GET", "/v1/webhooks?tenantId=globex", acmeAdmin, "")
	do(403, "GET", "/v1/webhooks", acmeReader, "")
	do(200, "GET", "/v1/webhooks/"+w.ID, platformReader, "")
	do(400, "GET", "/v1/webhooks?tenantID=acme", a.RootKey, "")

	// Changes.
	got := do(200, "PATCH", "/v1/webhooks/"+w.ID, acmeAdmin, `{"description":"CRM","status":"disabled"}`)
	if !strings.Contains(string(got), `"status":"disabled"`) || !strings.Contains(string(got), `"description":"CRM"`) {
		t.Errorf("patched %s", got)
	}
	got = do(200, "PATCH", "/v1/webhooks/"+w.ID, acmeAdmin, `{"status":"active","eventTypes":["person.created","person.updated"]}`)
	if !strings.Contains(string(got), `"disabledReason":null`) || !strings.Contains(string(got), `"person.updated"`) {
		t.Errorf("patched %s", got)
	}
	do(422, "PATCH", "/v1/webhooks/"+w.ID, acmeAdmin, `{"tenantId":"globex"}`)
	do(422, "PATCH", "/v1/webhooks/"+w.ID, acmeAdmin, `{"secret":"whsec_mine"}`)
	do(422, "PATCH", "/v1/webhooks/"+w.ID, acmeAdmin, `{"status":"paused"}`)
	do(422, "PATCH", "/v1/webhooks/"+w.ID, acmeAdmin, `{"url":"ftp://example.com/"}`)
	do(403, "PATCH", "/v1/webhooks/"+w.ID, platformReader, `{"description":"mine"}`)
	do(404, "PATCH", "/v1/webhooks/"+w.ID, globexAdmin, `{"description":"mine"}`)
	do(404, "DELETE", "/v1/webhooks/"+w.ID, globexAdmin, "")

	// The subscription works: a person created in acme arrives signed.
	recv.addSecret(secret)
	recv.addSecret(platformHook.Secret)
	a.createRecord("acme", "people", personJSON(1))
	waitUntil(t, 5*time.Second, "two deliveries", func() bool { return len(recv.deliveries()) >= 2 })
	recv.check()

	do(204, "DELETE", "/v1/webhooks/"+w.ID, acmeAdmin, "")
	do(404, "GET", "/v1/webhooks/"+w.ID, acmeAdmin, "")

	for _, b := range bodies {
		if strings.Contains(b, secret) || strings.Contains(b, platformHook.Secret) || strings.Contains(b, "whsec_") {
			t.Errorf("a body other than the 201 shows a secret: %s", b)
		}
	}
	// The catalog holds no secret in plain text.
	for _, s := range []string{secret, platformHook.Secret} {
		if catalogHolds(t, a.dir, s) {
			t.Errorf("catalog.db holds a webhook secret in plain text")
		}
	}
}

// TestWebhookURLsRefusedByAPI saves each URL of a table of private,
// loopback, metadata, oddly spelt and non-http addresses: every one is 422
// at /url, on create and on change.
func TestWebhookURLsRefusedByAPI(t *testing.T) {
	a := startChangeAPI(t, "", changeOptions{denyPrivate: true})
	a.tenant("acme")
	public := a.webhook(a.RootKey, `{"tenantId":"acme","url":"https://93.184.216.34/hook","eventTypes":["*"]}`)
	urls := []string{
		"http://127.0.0.1/", "http://127.0.0.1:8080/hook", "http://localhost/", "http://localhost:9/x",
		"http://[::1]/", "http://[::]/", "http://0.0.0.0/", "http://10.0.0.1/", "http://172.16.0.1/",
		"http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/",
		"http://[fd00::1]/", "http://100.64.0.1/", "http://224.0.0.1/", "http://255.255.255.255/",
		"http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/", "http://[::ffff:10.1.1.1]/",
		"http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/",
		"http://017700000001/", "http://[64:ff9b::a9fe:a9fe]/", "ftp://example.com/", "file:///etc/passwd",
		"gopher://example.com/", "javascript:alert(1)", "http://user:pw@93.184.216.34/", "/relative/hook",
		"http://[fe80::1%25en0]/", "http://198.51.100.7/",
	}
	if len(urls) < 30 {
		t.Fatalf("only %d URLs", len(urls))
	}
	for _, u := range urls {
		b, _ := json.Marshal(map[string]any{"tenantId": "acme", "url": u, "eventTypes": []string{"*"}})
		for _, req := range []struct{ method, path string }{
			{"POST", "/v1/webhooks"}, {"PATCH", "/v1/webhooks/" + public.ID},
		} {
			body := string(b)
			if req.method == "PATCH" {
				body = `{"url":` + string(hookJSON(u)) + `}`
			}
			status, got := a.do(req.method, req.path, a.RootKey, body)
			var p struct {
				Code   string
				Errors []struct{ Pointer string }
			}
			json.Unmarshal(got, &p)
			if status != 422 || len(p.Errors) == 0 || p.Errors[0].Pointer != "/url" {
				t.Errorf("%s %s: %d %s", req.method, u, status, got)
			}
		}
	}
}

func hookJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestDeliveryLogAndRetry checks the delivery log over the API: attempts,
// the receiver's status (never its body), a manual retry with the same
// webhook-id, and 410 disabling the webhook.
func TestDeliveryLogAndRetry(t *testing.T) {
	a := startChangeAPI(t, "", changeOptions{retry: []time.Duration{20 * time.Millisecond}})
	a.tenant("acme")
	recv := newHookReceiver(t)
	recv.setRespond(func(received) int { return 500 })
	w := a.webhook(a.RootKey, `{"tenantId":"acme","url":"`+recv.URL()+`","eventTypes":["person.created"]}`)
	recv.addSecret(w.Secret)
	a.createRecord("acme", "people", personJSON(1))

	type deliveryJSON struct {
		ID             string  `json:"id"`
		Status         string  `json:"status"`
		Attempts       int     `json:"attempts"`
		ResponseStatus *int    `json:"responseStatus"`
		Error          *string `json:"error"`
		ChangeID       string  `json:"changeId"`
	}
	var log struct{ Data []deliveryJSON }
	waitUntil(t, 5*time.Second, "the delivery to fail for good", func() bool {
		b := a.must(200, "GET", "/v1/webhooks/"+w.ID+"/deliveries", a.RootKey, "")
		if strings.Contains(string(b), "receiver-secret-body") {
			t.Fatalf("the log shows the receiver's body: %s", b)
		}
		json.Unmarshal(b, &log)
		return len(log.Data) == 1 && log.Data[0].Status == "failed"
	})
	d := log.Data[0]
	if d.Attempts != 2 || d.ResponseStatus == nil || *d.ResponseStatus != 500 || d.Error == nil {
		t.Errorf("failed delivery %+v", d)
	}

	recv.setRespond(nil)
	b := a.must(202, "POST", "/v1/webhooks/"+w.ID+"/deliveries/"+d.ID+"/retry", a.RootKey, "")
	if !strings.Contains(string(b), `"status":"pending"`) {
		t.Errorf("retry answered %s", b)
	}
	waitUntil(t, 5*time.Second, "the retried delivery", func() bool { return len(recv.deliveries()) == 1 })
	if got := recv.deliveries()[0]; got.WebhookID != d.ID || got.Event.ID != d.ChangeID {
		t.Errorf("retry sent webhook-id %s change %s, want %s %s", got.WebhookID, got.Event.ID, d.ID, d.ChangeID)
	}
	a.must(404, "POST", "/v1/webhooks/"+w.ID+"/deliveries/nope/retry", a.RootKey, "")

	// 410: the webhook is disabled, and says why.
	recv.setRespond(func(received) int { return 410 })
	a.createRecord("acme", "people", personJSON(2))
	waitUntil(t, 5*time.Second, "the webhook disabled", func() bool {
		b := a.must(200, "GET", "/v1/webhooks/"+w.ID, a.RootKey, "")
		return strings.Contains(string(b), `"status":"disabled"`) && strings.Contains(string(b), "410")
	})
	a.must(409, "POST", "/v1/webhooks/"+w.ID+"/deliveries/"+d.ID+"/retry", a.RootKey, "")
	recv.check()

	metrics := string(a.must(200, "GET", "/metrics", "", ""))
	for _, m := range []string{`runmerge_webhook_attempts_total{result="succeeded"} 1`,
		`runmerge_webhook_attempts_total{result="failed"} 2`, "runmerge_change_events_logged_total",
		"runmerge_webhook_oldest_due_seconds 0", "runmerge_webhook_deliveries_queued 0"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// catalogHolds reports whether s appears anywhere in the data directory's
// catalog files.
func catalogHolds(t testing.TB, dir, s string) bool {
	t.Helper()
	for _, name := range []string{"catalog.db", "catalog.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil && strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}
