package packed

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeExe stands in for an executable: any bytes will do.
func fakeExe() []byte {
	return bytes.Repeat([]byte("\x7fELF executable bytes "), 300)
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mig-agent")
	if err := os.WriteFile(p, data, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	exe := fakeExe()
	payload := []byte(`{"agent":{"server":"https://mig.example.net"}}`)
	packed, err := Append(exe, payload)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(packed), len(exe)+len(payload)+TrailerSize; got != want {
		t.Errorf("packed size = %d, want %d", got, want)
	}
	got, found, err := Read(writeFile(t, packed))
	if err != nil || !found {
		t.Fatalf("Read = found %v, %v", found, err)
	}
	if !bytes.Equal(got, payload) {
		t.Errorf("payload = %q, want %q", got, payload)
	}
	stripped, err := Strip(packed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stripped, exe) {
		t.Error("Strip did not give back the executable")
	}
}

func TestRepackReplaces(t *testing.T) {
	exe := fakeExe()
	first, err := Append(exe, []byte("first payload, quite a bit longer than the second"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Append(first, []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(second), len(exe)+len("second")+TrailerSize; got != want {
		t.Errorf("repacked size = %d, want %d (the old payload must go)", got, want)
	}
	got, found, err := ReadFrom(bytes.NewReader(second), int64(len(second)))
	if err != nil || !found || string(got) != "second" {
		t.Fatalf("ReadFrom = %q, %v, %v; want \"second\"", got, found, err)
	}
}

func TestNoPayload(t *testing.T) {
	for _, data := range [][]byte{fakeExe(), nil, []byte("x"), []byte(strings.Repeat("y", TrailerSize))} {
		payload, found, err := Read(writeFile(t, data))
		if err != nil || found || payload != nil {
			t.Errorf("Read(%d bytes without payload) = %q, %v, %v; want nil, false, nil", len(data), payload, found, err)
		}
		s, err := Strip(data)
		if err != nil || !bytes.Equal(s, data) {
			t.Errorf("Strip(%d bytes without payload) = %d bytes, %v", len(data), len(s), err)
		}
	}
}

// TestEveryByteCorruption flips each byte of the payload and trailer, and
// bytes of the executable, and wants every result refused.
func TestEveryByteCorruption(t *testing.T) {
	exe := fakeExe()
	payload := []byte(`{"agent":{"server":"https://mig.example.net","enrollmenttoken":"secret"}}`)
	packed, err := Append(exe, payload)
	if err != nil {
		t.Fatal(err)
	}
	check := func(i int) {
		bad := bytes.Clone(packed)
		bad[i] ^= 0x01
		got, found, err := ReadFrom(bytes.NewReader(bad), int64(len(bad)))
		if err == nil {
			t.Errorf("byte %d flipped: accepted (found %v, %d bytes)", i, found, len(got))
			return
		}
		if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d flipped: error %v wraps neither ErrChecksum nor ErrCorrupt", i, err)
		}
		if _, err := Strip(bad); err == nil {
			t.Errorf("byte %d flipped: Strip accepted it", i)
		}
		if _, err := Append(bad, []byte("new")); err == nil {
			t.Errorf("byte %d flipped: Append over it accepted it", i)
		}
	}
	for i := len(exe); i < len(packed); i++ {
		check(i)
	}
	for _, i := range []int{0, 1, len(exe) / 2, len(exe) - 1} {
		check(i)
	}
}

func TestChecksumErrorNamesFile(t *testing.T) {
	packed, err := Append(fakeExe(), []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	packed[len(packed)-TrailerSize-1] ^= 0x20
	p := writeFile(t, packed)
	_, _, err = Read(p)
	want := "appended configuration of " + p + " does not match its checksum: the file was modified after repacking"
	if err == nil || err.Error() != want || !errors.Is(err, ErrChecksum) {
		t.Errorf("Read = %v, want %q", err, want)
	}
}

func TestTruncated(t *testing.T) {
	packed, err := Append(fakeExe(), []byte("some payload bytes"))
	if err != nil {
		t.Fatal(err)
	}
	for cut := 1; cut < len(packed); cut++ {
		data := packed[:len(packed)-cut]
		got, found, err := ReadFrom(bytes.NewReader(data), int64(len(data)))
		if found && err == nil {
			t.Fatalf("cut %d bytes: accepted payload %q", cut, got)
		}
		// A cut that leaves any part of the trailer's first magic in the
		// last TrailerSize bytes must be reported, not taken for no payload.
		if cut <= TrailerSize-8 && err == nil {
			t.Errorf("cut %d bytes: no error", cut)
		}
	}
}

func TestBounds(t *testing.T) {
	if _, err := Append(fakeExe(), nil); err == nil {
		t.Error("Append accepted an empty payload")
	}
	if _, err := Append(nil, []byte("x")); err == nil {
		t.Error("Append accepted an empty executable")
	}
	if _, err := Append(fakeExe(), make([]byte, MaxPayload+1)); err == nil {
		t.Error("Append accepted a payload over MaxPayload")
	}
	if _, err := Append(fakeExe(), make([]byte, MaxPayload)); err != nil {
		t.Errorf("Append refused a payload of MaxPayload bytes: %v", err)
	}
}

func TestReadMissingFile(t *testing.T) {
	_, _, err := Read(filepath.Join(t.TempDir(), "absent"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read(absent) = %v, want a not-exist error", err)
	}
}

func FuzzReadFrom(f *testing.F) {
	packed, err := Append(fakeExe()[:64], []byte(`{"agent":{}}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(packed)
	f.Add(packed[:len(packed)-1])
	f.Add(packed[:len(packed)-TrailerSize])
	f.Add(packed[len(packed)-TrailerSize:])
	f.Add([]byte{})
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		payload, found, err := ReadFrom(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if payload != nil || found {
				t.Fatalf("error %v with found %v and %d bytes", err, found, len(payload))
			}
			return
		}
		if !found {
			if payload != nil {
				t.Fatal("payload without found")
			}
			return
		}
		if len(payload) == 0 || len(payload) > MaxPayload {
			t.Fatalf("payload of %d bytes accepted", len(payload))
		}
		// What was accepted re-packs to the same bytes.
		exe, err := Strip(data)
		if err != nil {
			t.Fatalf("Strip of an accepted file: %v", err)
		}
		again, err := Append(exe, payload)
		if err != nil {
			t.Fatalf("Append of an accepted payload: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatal("re-packing an accepted file changed it")
		}
	})
}
