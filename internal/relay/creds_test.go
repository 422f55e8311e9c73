package relay

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestCheckAgentID(t *testing.T) {
	tests := []struct {
		id   string
		want error
	}{
		{"0123456789abcdef0123456789abcdef", nil},
		{"ffffffffffffffffffffffffffffffff", nil},
		{"", ErrAgentID},
		{"0123456789abcdef", ErrAgentID},
		{"0123456789abcdef0123456789abcdef0", ErrAgentID},
		{"0123456789ABCDEF0123456789ABCDEF", ErrAgentID},
		{"0123456789abcdef0123456789abcdeg", ErrAgentID},
		{"0123456789abcdef.123456789abcdef", ErrAgentID},
		{"0123456789abcdef 123456789abcdef", ErrAgentID},
		{"0123456789abcdef*123456789abcdef", ErrAgentID},
		{"0123456789abcdef>123456789abcdef", ErrAgentID},
		{"0123456789abcdef\x00123456789abcdef", ErrAgentID},
		{"0123456789abcdef0123456789abcd\u00e9", ErrAgentID},
	}
	for _, tt := range tests {
		if got := CheckAgentID(tt.id); !errors.Is(got, tt.want) || (tt.want == nil) != (got == nil) {
			t.Errorf("CheckAgentID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func FuzzCheckAgentID(f *testing.F) {
	for _, s := range []string{"0123456789abcdef0123456789abcdef", "", "*", ">", "a.b", "0123456789ABCDEF0123456789ABCDEF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := CheckAgentID(id)
		if err != nil {
			if !errors.Is(err, ErrAgentID) {
				t.Fatalf("CheckAgentID(%q) = %v, want an error wrapping ErrAgentID", id, err)
			}
			return
		}
		if len(id) != AgentIDLen || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("CheckAgentID(%q) = nil, want an error", id)
		}
	})
}

func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p, err := NewPassword()
		if err != nil {
			t.Fatalf("NewPassword() = %v", err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			t.Fatalf("NewPassword() = %q, not base64url: %v", p, err)
		}
		if len(raw) != 32 {
			t.Errorf("NewPassword() carries %d bytes, want 32", len(raw))
		}
		if seen[p] {
			t.Fatalf("NewPassword() returned %q twice", p)
		}
		seen[p] = true
	}
}

func TestCheckPassword(t *testing.T) {
	p, err := NewPassword()
	if err != nil {
		t.Fatalf("NewPassword() = %v", err)
	}
	hash := HashPassword(p)
	if len(hash) != 32 {
		t.Errorf("HashPassword returned %d bytes, want 32 (SHA-256)", len(hash))
	}
	tests := []struct {
		name     string
		hash     []byte
		password string
		want     bool
	}{
		{"right password", hash, p, true},
		{"wrong password", hash, p + "x", false},
		{"empty password", hash, "", false},
		{"truncated hash", hash[:16], p, false},
		{"nil hash", nil, p, false},
		{"nil hash, empty password", nil, "", false},
	}
	for _, tt := range tests {
		if got := CheckPassword(tt.hash, tt.password); got != tt.want {
			t.Errorf("%s: CheckPassword = %v, want %v", tt.name, got, tt.want)
		}
	}
}
