package webhook

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSignatureKnownAnswer checks the signature against the example of the
// Standard Webhooks specification.
func TestSignatureKnownAnswer(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		msgID  = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts     = 1614265330
		body   = `{"test": 2432232314}`
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	got, err := Signature(secret, msgID, ts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	if err := Verify(secret, msgID, "1614265330", "v1,bogus "+want, []byte(body), time.Unix(ts+10, 0), 5*time.Minute); err != nil {
		t.Errorf("verify: %v", err)
	}
	for name, tc := range map[string]struct{ id, ts, body string }{
		"other id":        {"msg_other", "1614265330", body},
		"other timestamp": {msgID, "1614265331", body},
		"other body":      {msgID, "1614265330", `{"test": 2432232315}`},
	} {
		if err := Verify(secret, tc.id, tc.ts, want, []byte(tc.body), time.Unix(ts, 0), 5*time.Minute); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if err := Verify(secret, msgID, "1614265330", want, []byte(body), time.Unix(ts+3600, 0), 5*time.Minute); err == nil {
		t.Error("a timestamp an hour old verified")
	}
}

func TestNewSecret(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	if a == b || !strings.HasPrefix(a, "whsec_") {
		t.Fatalf("secrets %q, %q", a, b)
	}
	key, err := secretKey(a)
	if err != nil || len(key) != secretBytes {
		t.Fatalf("secret key: %d bytes, %v", len(key), err)
	}
	if _, err := BodySignature(a, []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestSecretBox(t *testing.T) {
	dir := t.TempDir()
	box, err := OpenSecretBox(dir)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal("w1", "whsec_abc")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "whsec_abc") {
		t.Fatal("sealed secret holds the secret")
	}
	again, err := OpenSecretBox(dir) // reads the same key file
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Open("w1", sealed); err != nil || got != "whsec_abc" {
		t.Fatalf("open: %q, %v", got, err)
	}
	if _, err := again.Open("w2", sealed); err == nil {
		t.Fatal("a secret sealed for one webhook opened for another")
	}
	other, _ := OpenSecretBox(t.TempDir())
	if _, err := other.Open("w1", sealed); err == nil {
		t.Fatal("a secret opened under another key")
	}
}

// TestSignerMatchesSignature checks that the dispatcher's signer, which
// reuses its HMACs, signs as Signature and BodySignature do, time after
// time.
func TestSignerMatchesSignature(t *testing.T) {
	secret := NewSecret()
	s, err := newSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{`{"a":1}`, ``, strings.Repeat("x", 5000), `{"b":2}`} {
		id := fmt.Sprintf("msg_%d", i)
		sig, bodySig := s.sign(id, int64(1700000000+i), []byte(body))
		want, _ := Signature(secret, id, int64(1700000000+i), []byte(body))
		wantBody, _ := BodySignature(secret, []byte(body))
		if sig != want || bodySig != wantBody {
			t.Errorf("body %d: signer gave %s %s, want %s %s", i, sig, bodySig, want, wantBody)
		}
	}
	if _, err := newSigner("whsec_!!!"); err == nil {
		t.Error("a malformed secret made a signer")
	}
}
