package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// refusedURLs are webhook URLs that must never be saved while private
// addresses are not allowed.
var refusedURLs = []string{
	// Loopback, in every spelling.
	"http://127.0.0.1/",
	"http://127.0.0.1:8080/hook",
	"http://127.1.2.3/",
	"http://localhost/",
	"http://LOCALHOST./",
	"http://hooks.localhost/",
	"http://[::1]/",
	"http://[::ffff:127.0.0.1]/",
	"http://[::ffff:7f00:1]/",
	"http://[::127.0.0.1]/",
	"http://[64:ff9b::7f00:1]/",
	"http://[2002:7f00:1::]/",
	"http://2130706433/",
	"http://0x7f000001/",
	"http://0177.0.0.1/",
	"http://127.1/",
	"http://0x7f.0.0.1/",
	// Unspecified.
	"http://0.0.0.0/",
	"http://0/",
	"http://[::]/",
	// Private and unique-local.
	"http://10.0.0.1/",
	"http://10.255.255.255:443/",
	"http://172.16.0.1/",
	"http://172.31.255.254/",
	"https://192.168.1.1/",
	"http://[::ffff:10.0.0.1]/",
	"http://[fc00::1]/",
	"http://[fd12:3456::1]/",
	// Link-local, the cloud metadata address among them.
	"http://169.254.169.254/latest/meta-data/",
	"http://[::ffff:169.254.169.254]/",
	"http://169.254.0.1/",
	"http://[fe80::1]/",
	"http://[fe80::1%25eth0]/",
	// Carrier-grade NAT, multicast, broadcast, reserved.
	"http://100.64.0.1/",
	"http://100.127.255.254/",
	"http://224.0.0.1/",
	"http://[ff02::1]/",
	"http://255.255.255.255/",
	"http://240.0.0.1/",
	"http://198.18.0.1/",
	"https://192.0.2.1/",
	// Not http at all, or not a URL a webhook can use.
	"ftp://example.com/hook",
	"file:///etc/passwd",
	"gopher://127.0.0.1/",
	"javascript:alert(1)",
	"//example.com/hook",
	"http://user:secret@93.184.216.34/hook",
	"http:///hook",
	"not a url",
	"http://93.184.216.34:99999/",
}

// TestGuardRefusesURLs checks every URL of the table is refused when
// saved, with a validation error pointing at the URL.
func TestGuardRefusesURLs(t *testing.T) {
	g := &Guard{}
	ctx := context.Background()
	if len(refusedURLs) < 30 {
		t.Fatalf("the table has %d URLs; keep at least 30", len(refusedURLs))
	}
	for _, u := range refusedURLs {
		err := g.CheckURL(ctx, u, "/url")
		if err == nil {
			t.Errorf("%s: saved", u)
			continue
		}
		if runmerge.ErrorCode(err) != runmerge.EINVALID || runmerge.ErrorFields(err)[0].Pointer != "/url" {
			t.Errorf("%s: %v, want a validation error at /url", u, err)
		}
	}
	// Public addresses pass, so the guard is not simply refusing all.
	for _, u := range []string{"http://93.184.216.34/hook", "https://[2606:4700:4700::1111]:8443/x",
		"https://[64:ff9b::5db8:d822]/"} {
		if err := g.CheckURL(ctx, u, "/url"); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	// With private addresses allowed, only the shape is checked.
	open := &Guard{AllowPrivate: true}
	if err := open.CheckURL(ctx, "http://127.0.0.1:9000/hook", "/url"); err != nil {
		t.Errorf("allow_private: %v", err)
	}
	if err := open.CheckURL(ctx, "file:///etc/passwd", "/url"); err == nil {
		t.Error("allow_private saved a file URL")
	}
}

// TestGuardRefusesAtDial dials a real listener on loopback by several
// names and addresses: the dialer's hook refuses each before connecting,
// which is what stops a name that resolved to a public address when saved
// from reaching a private one later.
func TestGuardRefusesAtDial(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	client := (&Guard{}).NewHTTPClient(2*time.Second, 2)
	for _, host := range []string{"127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "[::1]", "0.0.0.0"} {
		resp, err := client.Post("http://"+host+":"+port+"/hook", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: delivered, status %d", host, resp.StatusCode)
			continue
		}
		if !errors.Is(err, ErrAddressRefused) {
			t.Errorf("%s: %v, want the address refused", host, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the private receiver got %d requests", n)
	}
	// The same client reaches it once private addresses are allowed.
	resp, err := (&Guard{AllowPrivate: true}).NewHTTPClient(2*time.Second, 2).Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestRefusedAddresses checks the address predicate on its own.
func TestRefusedAddresses(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "::1", "10.1.2.3", "192.168.0.1", "172.20.0.1",
		"169.254.169.254", "fe80::1", "fd00::1", "100.64.0.1", "224.0.0.251", "ff05::1", "0.0.0.0",
		"::", "::ffff:127.0.0.1", "::ffff:192.168.0.1", "64:ff9b::a00:1", "2002:c0a8:1::1",
		"2001:db8::1", "255.255.255.255"} {
		if !Refused(netip.MustParseAddr(s)) {
			t.Errorf("%s: allowed", s)
		}
	}
	for _, s := range []string{"93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808",
		"2002:808:808::1", "::ffff:8.8.8.8"} {
		if Refused(netip.MustParseAddr(s)) {
			t.Errorf("%s: refused", s)
		}
	}
}

// TestRedirectNotFollowed stands a receiver that redirects to a private
// address: the delivery is not followed there, and it counts as failed.
func TestRedirectNotFollowed(t *testing.T) {
	var privateHits atomic.Int32
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		privateHits.Add(1)
	}))
	defer private.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, private.URL+"/internal", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	redirectorAddr := netip.MustParseAddrPort(redirector.Listener.Addr().String())

	dir := t.TempDir()
	store := openStore(t, dir)
	cfg := testConfig(dir)
	cfg.AllowPrivate = false
	cfg.RetrySchedule = []time.Duration{time.Hour}
	d := startDispatcher(t, store, cfg)
	// Stand the redirector in for a public receiver: only its own address
	// gets through the dialer.
	d.guard.allowAddr = func(ap netip.AddrPort) bool { return ap == redirectorAddr }
	ctx := context.Background()
	mustCreateTenant(t, store, "acme")

	d.guard.AllowPrivate = true // to save the loopback URL; dials are checked below
	w, _, err := d.CreateWebhook(ctx, platformAdmin, WebhookInput{TenantID: "acme",
		URL: redirector.URL + "/hook", EventTypes: []string{"person.created"}})
	d.guard.AllowPrivate = false
	if err != nil {
		t.Fatal(err)
	}
	write(t, d, store, "acme", func(db *tenantstore.DB) error {
		_, err := db.CreateRecord(ctx, platformAdmin, collection(t, runmerge.CollectionPeople), personBody(1), nil, nil)
		return err
	})
	waitFor(t, 5*time.Second, "the attempt in the log", func() bool {
		log, _ := store.Catalog.Deliveries(ctx, w.ID, "", 10)
		return len(log) == 1 && log[0].Attempts == 1
	})
	log, _ := store.Catalog.Deliveries(ctx, w.ID, "", 10)
	if log[0].Status != tenantstore.DeliveryPending || log[0].ResponseStatus != 307 ||
		!strings.Contains(log[0].LastError, "not followed") {
		t.Errorf("delivery after a redirect: %+v", log[0])
	}
	if n := privateHits.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}

	// And the client by itself does not follow, even where the target
	// would be allowed.
	resp, err := (&Guard{AllowPrivate: true}).NewHTTPClient(time.Second, 1).Get(redirector.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || privateHits.Load() != 0 {
		t.Errorf("client: status %d, %d hits on the target", resp.StatusCode, privateHits.Load())
	}
}
