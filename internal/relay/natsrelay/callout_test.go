package natsrelay

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/relaytest"
)

// quietPeriod is how long a test watches for something that must not
// happen.
const quietPeriod = 500 * time.Millisecond

// testCallout is a Callout with no connection, its keys, and one agent
// whose password it knows.
type testCallout struct {
	*Callout
	issuerPub string
	xkey      nkeys.KeyPair
	agent     string
	password  string
}

func newTestCallout(t testing.TB, encrypt bool) *testCallout {
	t.Helper()
	issuerSeed, xkeySeed, err := NewCalloutKeys()
	if err != nil {
		t.Fatalf("NewCalloutKeys() = %v", err)
	}
	issuer, err := ParseCalloutIssuer(issuerSeed)
	if err != nil {
		t.Fatalf("ParseCalloutIssuer = %v", err)
	}
	tc := &testCallout{agent: relaytest.NewAgentID(t)}
	tc.issuerPub, _ = issuer.PublicKey()
	if tc.password, err = relay.NewPassword(); err != nil {
		t.Fatal(err)
	}
	cfg := CalloutConfig{Issuer: issuer, Logger: testLogger(), Authenticate: func(id, password string) bool {
		return id == tc.agent && relay.CheckPassword(relay.HashPassword(tc.password), password)
	}}
	if encrypt {
		if tc.xkey, err = ParseCalloutXKey(xkeySeed); err != nil {
			t.Fatalf("ParseCalloutXKey = %v", err)
		}
		cfg.XKey = tc.xkey
	}
	if tc.Callout, err = newCallout(cfg); err != nil {
		t.Fatalf("newCallout = %v", err)
	}
	return tc
}

// request is an authorization request as nats-server makes it, signed by
// a new server key, and the keys behind it.
type request struct {
	claims *jwt.AuthorizationRequestClaims
	server nkeys.KeyPair
	user   string // the user public key the answer must name
}

func newRequest(t testing.TB, issuerPub, user, password string) *request {
	t.Helper()
	srv, err := nkeys.CreateServer()
	if err != nil {
		t.Fatal(err)
	}
	srvPub, _ := srv.PublicKey()
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, _ := ukp.PublicKey()
	rc := jwt.NewAuthorizationRequestClaims(issuerPub)
	rc.Audience = calloutRequestAudience
	rc.UserNkey = upub
	rc.Server = jwt.ServerID{Name: "test", ID: srvPub, Host: "127.0.0.1"}
	rc.ConnectOptions = jwt.ConnectOptions{Username: user, Password: password, Protocol: 1}
	rc.Expires = time.Now().Add(5 * time.Second).Unix()
	return &request{claims: rc, server: srv, user: upub}
}

// encode signs the request with its server key.
func (r *request) encode(t testing.TB) string {
	t.Helper()
	tok, err := r.claims.Encode(r.server)
	if err != nil {
		t.Fatalf("encoding the request: %v", err)
	}
	return tok
}

// forgery is a request nats-server would not have made.
type forgery struct{ name, token string }

// forgeries returns requests for agent id with its password that must all
// be refused.
func forgeries(t testing.TB, issuerPub, id, password string) []forgery {
	t.Helper()
	var fs []forgery
	add := func(name string, change func(r *request) string) {
		r := newRequest(t, issuerPub, id, password)
		fs = append(fs, forgery{name, change(r)})
	}
	add("garbage", func(*request) string { return "not a jwt" })
	add("tampered", func(r *request) string {
		tok := r.encode(t)
		// Sign for one user key, then swap in the claims of another.
		other := newRequest(t, issuerPub, id, password)
		other.claims.UserNkey = r.user
		o := strings.Split(other.encode(t), ".")
		p := strings.Split(tok, ".")
		return p[0] + "." + o[1] + "." + p[2]
	})
	add("signed by an account key", func(r *request) string {
		akp, _ := nkeys.CreateAccount()
		tok, err := r.claims.Encode(akp)
		if err != nil {
			// jwt refuses to encode it: forge the header by hand.
			return "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.AAAA"
		}
		return tok
	})
	add("signed by another server than it names", func(r *request) string {
		other, _ := nkeys.CreateServer()
		tok, _ := r.claims.Encode(other)
		return tok
	})
	add("for another issuer", func(r *request) string {
		akp, _ := nkeys.CreateAccount()
		r.claims.Subject, _ = akp.PublicKey()
		return r.encode(t)
	})
	add("wrong audience", func(r *request) string {
		r.claims.Audience = "someone-else"
		return r.encode(t)
	})
	add("expired", func(r *request) string {
		r.claims.Expires = time.Now().Add(-time.Minute).Unix()
		return r.encode(t)
	})
	add("no expiry", func(r *request) string {
		r.claims.Expires = 0
		return r.encode(t)
	})
	add("not yet valid", func(r *request) string {
		r.claims.NotBefore = time.Now().Add(time.Hour).Unix()
		return r.encode(t)
	})
	add("an answer, not a request", func(r *request) string {
		resp := jwt.NewAuthorizationResponseClaims(r.user)
		resp.Audience = r.claims.Server.ID
		tok, _ := resp.Encode(r.server)
		return tok
	})
	return fs
}

// grantIn returns the user JWT an answer grants, or "".
func grantIn(t testing.TB, answer []byte) string {
	t.Helper()
	resp, err := jwt.DecodeAuthorizationResponseClaims(string(answer))
	if err != nil {
		t.Fatalf("decoding the answer: %v", err)
	}
	if resp.Jwt != "" && resp.Error != "" {
		t.Fatalf("answer has both a user JWT and an error %q", resp.Error)
	}
	return resp.Jwt
}

// TestCalloutAnswer: the agent with its password gets a user JWT signed by
// the issuer, for the server's user key and the server, with exactly the
// agent's permissions; every other login gets an error answer.
func TestCalloutAnswer(t *testing.T) {
	tc := newTestCallout(t, false)
	r := newRequest(t, tc.issuerPub, tc.agent, tc.password)
	answer, err := tc.answer([]byte(r.encode(t)), "")
	if err != nil {
		t.Fatalf("answer = %v", err)
	}
	resp, err := jwt.DecodeAuthorizationResponseClaims(string(answer))
	if err != nil {
		t.Fatalf("decoding the answer: %v", err)
	}
	if resp.Issuer != tc.issuerPub || resp.Subject != r.user || resp.Audience != r.claims.Server.ID || resp.Error != "" {
		t.Errorf("answer: issuer %s subject %s audience %s error %q, want %s, %s, %s, no error",
			resp.Issuer, resp.Subject, resp.Audience, resp.Error, tc.issuerPub, r.user, r.claims.Server.ID)
	}
	uc, err := jwt.DecodeUserClaims(resp.Jwt)
	if err != nil {
		t.Fatalf("decoding the user JWT: %v", err)
	}
	if uc.Issuer != tc.issuerPub || uc.Subject != r.user || uc.Audience != GlobalAccount || uc.Name != tc.agent || uc.IssuerAccount != "" {
		t.Errorf("user JWT: issuer %s subject %s audience %s name %s issuer account %q, want %s, %s, %s, %s, none",
			uc.Issuer, uc.Subject, uc.Audience, uc.Name, uc.IssuerAccount, tc.issuerPub, r.user, GlobalAccount, tc.agent)
	}
	want := agentPermissions(tc.agent)
	if !slices.Equal(uc.Pub.Allow, want.Publish.Allow) || len(uc.Pub.Deny) != 0 {
		t.Errorf("publish permissions = allow %v deny %v, want allow %v only", uc.Pub.Allow, uc.Pub.Deny, want.Publish.Allow)
	}
	if !slices.Equal(uc.Sub.Allow, want.Subscribe.Allow) || len(uc.Sub.Deny) != 0 {
		t.Errorf("subscribe permissions = allow %v deny %v, want allow %v only", uc.Sub.Allow, uc.Sub.Deny, want.Subscribe.Allow)
	}
	if uc.Resp != nil {
		t.Errorf("response permissions = %+v, want none", uc.Resp)
	}
	if !slices.Equal([]string(uc.AllowedConnectionTypes), []string{jwt.ConnectionTypeStandard}) {
		t.Errorf("connection types = %v, want only %s", uc.AllowedConnectionTypes, jwt.ConnectionTypeStandard)
	}
	if uc.BearerToken {
		t.Error("the user JWT is a bearer token")
	}
	ttl := time.Until(time.Unix(uc.Expires, 0))
	if uc.Expires == 0 || ttl > DefaultCalloutTTL+DefaultCalloutTTL/10+time.Minute {
		t.Errorf("user JWT expires in %s, want about %s", ttl, DefaultCalloutTTL)
	}

	other := relaytest.NewAgentID(t)
	refused := []struct{ name, user, password string }{
		{"wrong password", tc.agent, tc.password + "x"},
		{"no password", tc.agent, ""},
		{"unknown agent", other, tc.password},
		{"not an agent id", "root", tc.password},
		{"hub user", HubUser, tc.password},
		{"wildcard", "mig.>", tc.password},
	}
	for _, tt := range refused {
		r := newRequest(t, tc.issuerPub, tt.user, tt.password)
		answer, err := tc.answer([]byte(r.encode(t)), "")
		if err != nil {
			t.Errorf("%s: answer = %v, want an error answer", tt.name, err)
			continue
		}
		resp, err := jwt.DecodeAuthorizationResponseClaims(string(answer))
		if err != nil {
			t.Fatalf("%s: decoding the answer: %v", tt.name, err)
		}
		if resp.Jwt != "" || resp.Error == "" || resp.Subject != r.user || resp.Audience != r.claims.Server.ID {
			t.Errorf("%s: answer jwt %q error %q subject %s audience %s, want an error for %s on %s",
				tt.name, resp.Jwt, resp.Error, resp.Subject, resp.Audience, r.user, r.claims.Server.ID)
		}
	}
}

// TestCalloutForged: requests nats-server did not make get no login, even
// with the agent's password.
func TestCalloutForged(t *testing.T) {
	tc := newTestCallout(t, false)
	for _, f := range forgeries(t, tc.issuerPub, tc.agent, tc.password) {
		answer, err := tc.answer([]byte(f.token), "")
		if err != nil {
			continue // not answered at all
		}
		if grant := grantIn(t, answer); grant != "" {
			t.Errorf("%s: granted a login", f.name)
		}
	}
}

// TestCalloutEncrypted: with an xkey, requests must arrive encrypted to it
// from the server's xkey, and the answer is encrypted back.
func TestCalloutEncrypted(t *testing.T) {
	tc := newTestCallout(t, true)
	xpub, _ := tc.xkey.PublicKey()
	serverX, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	serverXPub, _ := serverX.PublicKey()
	r := newRequest(t, tc.issuerPub, tc.agent, tc.password)
	r.claims.Server.XKey = serverXPub
	sealed, err := serverX.Seal([]byte(r.encode(t)), xpub)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := tc.answer(sealed, serverXPub)
	if err != nil {
		t.Fatalf("answer(encrypted) = %v", err)
	}
	if strings.HasPrefix(string(answer), "eyJ") {
		t.Error("the answer to an encrypted request is in clear text")
	}
	plain, err := serverX.Open(answer, xpub)
	if err != nil {
		t.Fatalf("decrypting the answer: %v", err)
	}
	if grantIn(t, plain) == "" {
		t.Error("the encrypted request of a good agent got no login")
	}

	// The same request in clear text, or sealed by another key than the one
	// named, is refused.
	if _, err := tc.answer([]byte(r.encode(t)), ""); err == nil {
		t.Error("answer(clear text request with an xkey configured) = nil error")
	}
	if _, err := tc.answer([]byte(r.encode(t)), serverXPub); err == nil {
		t.Error("answer(clear text request claiming encryption) = nil error")
	}
	intruder, _ := nkeys.CreateCurveKeys()
	sealedByOther, _ := intruder.Seal([]byte(r.encode(t)), xpub)
	if _, err := tc.answer(sealedByOther, serverXPub); err == nil {
		t.Error("answer(request sealed by another key than the one named) = nil error")
	}
	if _, err := tc.answer(sealed, "not-a-key"); err == nil {
		t.Error("answer(request naming a bad xkey) = nil error")
	}

	// Without an xkey here, an encrypted request is refused.
	plainCallout := newTestCallout(t, false)
	if _, err := plainCallout.answer(sealed, serverXPub); err == nil {
		t.Error("answer(encrypted request, no xkey configured) = nil error")
	}
}

func TestParseCalloutKeys(t *testing.T) {
	issuerSeed, xkeySeed, err := NewCalloutKeys()
	if err != nil {
		t.Fatalf("NewCalloutKeys() = %v", err)
	}
	userSeed := func() []byte {
		kp, _ := nkeys.CreateUser()
		s, _ := kp.Seed()
		return s
	}()
	tests := []struct {
		name   string
		parse  func([]byte) (nkeys.KeyPair, error)
		seed   []byte
		wantOK bool
	}{
		{"issuer", ParseCalloutIssuer, issuerSeed, true},
		{"issuer with newline", ParseCalloutIssuer, append(append([]byte{}, issuerSeed...), '\n'), true},
		{"xkey", ParseCalloutXKey, xkeySeed, true},
		{"xkey as issuer", ParseCalloutIssuer, xkeySeed, false},
		{"issuer as xkey", ParseCalloutXKey, issuerSeed, false},
		{"user seed", ParseCalloutIssuer, userSeed, false},
		{"empty", ParseCalloutIssuer, nil, false},
		{"public key", ParseCalloutIssuer, []byte("ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVIOBYQGUWVLA"), false},
		{"garbage", ParseCalloutXKey, []byte("SXAgarbage"), false},
		{"corrupted", ParseCalloutIssuer, append([]byte{}, issuerSeed[:len(issuerSeed)-2]...), false},
	}
	for _, tt := range tests {
		kp, err := tt.parse(tt.seed)
		if (err == nil) != tt.wantOK {
			t.Errorf("%s: err = %v, want ok %v", tt.name, err, tt.wantOK)
		}
		if err != nil {
			if !errors.Is(err, ErrCalloutKey) {
				t.Errorf("%s: err = %v, want ErrCalloutKey", tt.name, err)
			}
			if len(tt.seed) > 8 && strings.Contains(err.Error(), string(tt.seed[:8])) {
				t.Errorf("%s: the error repeats the seed: %v", tt.name, err)
			}
		} else if kp == nil {
			t.Errorf("%s: nil key pair", tt.name)
		}
	}
	if _, err := newCallout(CalloutConfig{Authenticate: func(string, string) bool { return true }}); !errors.Is(err, ErrCalloutKey) {
		t.Errorf("newCallout(no issuer) = %v, want ErrCalloutKey", err)
	}
	issuer, _ := ParseCalloutIssuer(issuerSeed)
	if _, err := newCallout(CalloutConfig{Issuer: issuer}); err == nil {
		t.Error("newCallout(no Authenticate) = nil error")
	}
	xkey, _ := ParseCalloutXKey(xkeySeed)
	if _, err := newCallout(CalloutConfig{Issuer: xkey, Authenticate: func(string, string) bool { return true }}); !errors.Is(err, ErrCalloutKey) {
		t.Errorf("newCallout(xkey as issuer) = %v, want ErrCalloutKey", err)
	}
	if _, err := newCallout(CalloutConfig{Issuer: issuer, XKey: issuer, Authenticate: func(string, string) bool { return true }}); !errors.Is(err, ErrCalloutKey) {
		t.Errorf("newCallout(issuer as xkey) = %v, want ErrCalloutKey", err)
	}
	if _, err := CalloutNATSConfig(CalloutNATSOptions{Issuer: "nope", HubPassword: "p"}); err == nil {
		t.Error("CalloutNATSConfig(bad issuer) = nil error")
	}
}

// FuzzCalloutAnswer: whatever arrives on the callout subject, the Callout
// does not panic and grants no login without the agent's password.
func FuzzCalloutAnswer(f *testing.F) {
	tc := newTestCallout(f, false)
	good := newRequest(f, tc.issuerPub, tc.agent, tc.password)
	f.Add([]byte(good.encode(f)), "")
	for _, fg := range forgeries(f, tc.issuerPub, tc.agent, "guess") {
		f.Add([]byte(fg.token), "")
	}
	f.Add([]byte("eyJ"), "XAAAA")
	f.Fuzz(func(t *testing.T, data []byte, xkey string) {
		answer, err := tc.answer(data, xkey)
		if err != nil {
			return
		}
		resp, err := jwt.DecodeAuthorizationResponseClaims(string(answer))
		if err != nil {
			t.Fatalf("the Callout's own answer does not decode: %v", err)
		}
		if resp.Jwt == "" {
			return
		}
		req, err := jwt.DecodeAuthorizationRequestClaims(string(data))
		if err != nil || req.ConnectOptions.Password != tc.password || req.ConnectOptions.Username != tc.agent {
			t.Fatalf("granted a login for a request without the agent's password: %q", data)
		}
	})
}

func newCurveKey(t testing.TB) nkeys.KeyPair {
	t.Helper()
	kp, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}
