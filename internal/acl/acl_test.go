package acl

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	fpAlice = "E60892BB9BD89A69F759A1A0A3D652173B763E8F"
	fpBob   = "9F759A1A0A3D652173B763E8FE60892BB9BD89A6"
	fpCarol = "0123456789ABCDEF0123456789ABCDEF01234567"
	fpV6    = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
)

// migACL is an ACL as MIG operators wrote them.
const migACL = `{
  "default": {
    "minimumweight": 2,
    "investigators": {
      "Alice": {"fingerprint": "e608 92bb 9bd8 9a69 f759  a1a0 a3d6 5217 3b76 3e8f", "weight": 1},
      "Bob":   {"fingerprint": "9F759A1A0A3D652173B763E8FE60892BB9BD89A6", "weight": 1}
    }
  },
  "agentdestroy": {
    "minimumweight": 3,
    "investigators": {
      "Alice": {"fingerprint": "E60892BB9BD89A69F759A1A0A3D652173B763E8F", "weight": 2},
      "Bob":   {"fingerprint": "9F759A1A0A3D652173B763E8FE60892BB9BD89A6", "weight": 1},
      "Carol": {"fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567", "weight": 0}
    }
  },
  "ping": {
    "minimumweight": 1,
    "investigators": {
      "Alice": {"fingerprint": "E60892BB9BD89A69F759A1A0A3D652173B763E8F", "weight": 1}
    }
  }
}`

func TestParse(t *testing.T) {
	got, err := Parse([]byte(migACL))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := ACL{
		"default": {MinimumWeight: 2, Investigators: map[string]Investigator{
			"Alice": {Fingerprint: fpAlice, Weight: 1},
			"Bob":   {Fingerprint: fpBob, Weight: 1},
		}},
		"agentdestroy": {MinimumWeight: 3, Investigators: map[string]Investigator{
			"Alice": {Fingerprint: fpAlice, Weight: 2},
			"Bob":   {Fingerprint: fpBob, Weight: 1},
			"Carol": {Fingerprint: fpCarol, Weight: 0},
		}},
		"ping": {MinimumWeight: 1, Investigators: map[string]Investigator{
			"Alice": {Fingerprint: fpAlice, Weight: 1},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
}

func TestParseRefuses(t *testing.T) {
	entry := func(minimum, fp, weight string) string {
		return `{"default": {"minimumweight": ` + minimum + `, "investigators": {"Alice": {"fingerprint": "` + fp + `", "weight": ` + weight + `}}}}`
	}
	tests := []struct {
		name    string
		input   string
		wantErr bool
	}{
		{"valid", entry("1", fpAlice, "1"), false},
		{"version 6 fingerprint", entry("1", fpV6, "1"), false},
		{"weight zero", entry("1", fpAlice, "0"), false},
		{"empty object", `{}`, false},
		{"entry without investigators", `{"file": {"minimumweight": 1}}`, false},
		{"minimumweight zero", entry("0", fpAlice, "1"), true},
		{"minimumweight negative", entry("-1", fpAlice, "1"), true},
		{"minimumweight missing", `{"default": {"investigators": {}}}`, true},
		{"minimumweight too big", entry("2000000", fpAlice, "1"), true},
		{"minimumweight not integer", entry("1.5", fpAlice, "1"), true},
		{"weight negative", entry("1", fpAlice, "-1"), true},
		{"fingerprint short", entry("1", fpAlice[:39], "1"), true},
		{"fingerprint not hex", entry("1", strings.Repeat("G", 40), "1"), true},
		{"fingerprint empty", entry("1", "", "1"), true},
		{"fingerprint with 0x", entry("1", "0x"+fpAlice[2:], "1"), true},
		{"unknown field in entry", `{"default": {"minimumweight": 1, "investigators": {}, "maxweight": 3}}`, true},
		{"unknown field in investigator", `{"default": {"minimumweight": 1, "investigators": {"A": {"fingerprint": "` + fpAlice + `", "weight": 1, "email": "a@b"}}}}`, true},
		{"duplicate entry", `{"default": {"minimumweight": 1}, "default": {"minimumweight": 5}}`, true},
		{"duplicate investigator", `{"default": {"minimumweight": 1, "investigators": {"A": {"fingerprint": "` + fpAlice + `", "weight": 1}, "A": {"fingerprint": "` + fpBob + `", "weight": 1}}}}`, true},
		{"null entry", `{"file": null}`, true},
		{"bad entry name", `{"File!": {"minimumweight": 1}}`, true},
		{"empty entry name", `{"": {"minimumweight": 1}}`, true},
		{"empty investigator name", `{"default": {"minimumweight": 1, "investigators": {"": {"fingerprint": "` + fpAlice + `", "weight": 1}}}}`, true},
		{"null", `null`, true},
		{"array", `[]`, true},
		{"empty", ``, true},
		{"trailing data", `{} {}`, true},
		{"not JSON", `default: 2`, true},
		{"too big", `{"default": {"minimumweight": 1}}` + strings.Repeat(" ", MaxSize), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Parse([]byte(tt.input))
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) || a != nil {
					t.Errorf("Parse = %v, %v; want error %v", a, err, ErrInvalid)
				}
				return
			}
			if err != nil || a == nil {
				t.Errorf("Parse = %v, %v; want a valid ACL", a, err)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	parsed, err := Parse([]byte(migACL))
	if err != nil {
		t.Fatal(err)
	}
	// Carol is listed twice in "file", with weights 1 and 2: she counts
	// once, with 2.
	twice := ACL{
		"file": {MinimumWeight: 3, Investigators: map[string]Investigator{
			"Carol":      {Fingerprint: fpCarol, Weight: 1},
			"Carol (2)":  {Fingerprint: strings.ToLower(fpCarol), Weight: 2},
			"Alice":      {Fingerprint: fpAlice, Weight: 1},
			"Nobody (0)": {Fingerprint: fpBob, Weight: 0},
		}},
	}
	tests := []struct {
		name    string
		acl     ACL
		module  string
		signers []string
		allowed bool
		msg     string // part of the denial message
	}{
		{"nil ACL denies", nil, "file", []string{fpAlice, fpBob}, false, "empty"},
		{"empty ACL denies", ACL{}, "file", []string{fpAlice, fpBob}, false, "empty"},
		{"no entry and no default denies", twice, "netstat", []string{fpAlice, fpCarol}, false, "no ACL entry"},
		{"no signers denies", parsed, "file", nil, false, "weight 0, entry \"default\" needs 2"},
		{"default: one signer is not enough", parsed, "file", []string{fpAlice}, false, "weight 1, entry \"default\" needs 2"},
		{"default: two signers reach 2", parsed, "file", []string{fpAlice, fpBob}, true, ""},
		{"default: one key listed twice counts once", parsed, "file", []string{fpAlice, fpAlice}, false, "1 distinct signers reach weight 1"},
		{"default: same key in other spellings counts once", parsed, "file", []string{fpAlice, strings.ToLower(fpAlice), "E608 92BB" + fpAlice[8:]}, false, "weight 1"},
		{"default: unknown signer weighs nothing", parsed, "file", []string{fpAlice, fpCarol}, false, "weight 1"},
		{"module entry is stricter than default", parsed, "agentdestroy", []string{fpAlice}, false, "weight 2, entry \"agentdestroy\" needs 3"},
		{"module entry reached", parsed, "agentdestroy", []string{fpBob, fpAlice}, true, ""},
		{"module entry with a zero weight", parsed, "agentdestroy", []string{fpBob, fpCarol}, false, "weight 1"},
		{"module entry is looser than default", parsed, "ping", []string{fpAlice}, true, ""},
		{"module entry excludes a default investigator", parsed, "ping", []string{fpBob}, false, "weight 0, entry \"ping\" needs 1"},
		{"highest weight of a key listed under two names", twice, "file", []string{fpCarol, fpAlice}, true, ""},
		{"key listed under two names counts once", twice, "file", []string{fpCarol}, false, "weight 2, entry \"file\" needs 3"},
		{"code-built entry with minimum weight 0 denies", ACL{"default": {}}, "file", nil, false, "minimumweight 0"},
		{"negative weight counts as zero", ACL{"default": {MinimumWeight: 1, Investigators: map[string]Investigator{
			"A": {Fingerprint: fpAlice, Weight: 1}, "B": {Fingerprint: fpBob, Weight: -5},
		}}}, "file", []string{fpBob, fpAlice}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.acl.Authorize(tt.module, tt.signers)
			if tt.allowed {
				if err != nil {
					t.Errorf("Authorize = %v, want allowed", err)
				}
				return
			}
			if !errors.Is(err, ErrDenied) {
				t.Fatalf("Authorize = %v, want %v", err, ErrDenied)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Authorize error %q does not say %q", err, tt.msg)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	a, err := Parse([]byte(migACL))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(Marshal(acl)): %v", err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	tests := []struct{ in, want string }{
		{fpAlice, fpAlice},
		{strings.ToLower(fpAlice), fpAlice},
		{"e608 92bb\t9bd8\n9a69", "E60892BB9BD89A69"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := NormalizeFingerprint(tt.in); got != tt.want {
			t.Errorf("NormalizeFingerprint(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(migACL))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"default": {"minimumweight": 1, "investigators": {"A": {"fingerprint": "` + fpAlice + `", "weight": 1}}}}`))
	f.Add([]byte(`{"default": {"minimumweight": 1}, "default": {"minimumweight": 5}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"file": {"minimumweight": 1e400}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || a != nil {
				t.Errorf("Parse = %v, %v; want nil and an error wrapping %v", a, err, ErrInvalid)
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Errorf("Parse returned an ACL that does not validate: %v", err)
		}
		again, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Parse(again)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(data))): %v", err)
		}
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("round trip mismatch (-want +got):\n%s", diff)
		}
		for module, p := range a {
			var fps []string
			for _, inv := range p.Investigators {
				fps = append(fps, inv.Fingerprint)
			}
			// Every listed key together reaches the weight exactly when
			// the weights of the distinct keys add up to it.
			best := map[string]int{}
			for _, inv := range p.Investigators {
				best[inv.Fingerprint] = max(best[inv.Fingerprint], inv.Weight)
			}
			sum := 0
			for _, w := range best {
				sum += w
			}
			err := a.Authorize(module, fps)
			if allowed := err == nil; allowed != (sum >= p.MinimumWeight) {
				t.Errorf("Authorize(%q, all keys) = %v with total weight %d and minimum %d", module, err, sum, p.MinimumWeight)
			}
		}
	})
}

func TestRawEntry(t *testing.T) {
	fp := strings.Repeat("A", 40)
	base := `"default":{"minimumweight":1,"investigators":{"a":{"fingerprint":"` + fp + `","weight":1}}}`
	if _, err := Parse([]byte(`{` + base + `,"raw_scribe":{"minimumweight":1,"investigators":{}}}`)); err == nil {
		t.Error("a raw entry no heavier than the module's was accepted")
	}
	a, err := Parse([]byte(`{` + base + `,"raw_scribe":{"minimumweight":2,"investigators":{"a":{"fingerprint":"` + fp + `","weight":2}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AuthorizeRaw("scribe", []string{fp}); err != nil {
		t.Errorf("AuthorizeRaw(scribe) = %v", err)
	}
	if err := a.AuthorizeRaw("file", []string{fp}); err == nil {
		t.Error("AuthorizeRaw(file) without raw_file allowed")
	}
}
