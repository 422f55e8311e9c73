package all_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/agentdestroy"
	"github.com/migplatform/mig/internal/module/file"
	"github.com/migplatform/mig/internal/module/memory"
	"github.com/migplatform/mig/internal/module/netstat"
	"github.com/migplatform/mig/internal/module/ping"
	"github.com/migplatform/mig/internal/module/pkg"
	"github.com/migplatform/mig/internal/module/scribe"
	"github.com/migplatform/mig/internal/module/sshkey"
	"github.com/migplatform/mig/internal/module/timedrift"
)

// decoders decode each module's parameters into its Parameters type with
// the decoder the module uses, for comparison.
var decoders = []struct {
	module string
	decode func([]byte) (any, error)
}{
	{"file", decodeAs[file.Parameters]},
	{"netstat", decodeAs[netstat.Parameters]},
	{"ping", decodeAs[ping.Parameters]},
	{"memory", decodeAs[memory.Parameters]},
	{"pkg", decodeAs[pkg.Parameters]},
	{"sshkey", decodeAs[sshkey.Parameters]},
	{"timedrift", decodeAs[timedrift.Parameters]},
	{"agentdestroy", decodeAs[agentdestroy.Parameters]},
	{"scribe", decodeAs[scribe.Parameters]},
}

func decodeAs[P any](raw []byte) (any, error) {
	return module.DecodeParameters[P](raw, module.ErrUnknownModule)
}

// FuzzReorderedParametersDecodeAlike is issue 12's differential target: for
// any parameters that Check accepts in an action, every reordering of their
// object keys that keeps the signed encoding (so the signatures) valid
// decodes, in the module's own decoder and in module.Parse, to the same
// parameters. Before the signed encoding refused keys equal under case
// folding, {"paths":..,"Paths":..} broke this: both orders signed alike and
// decoded differently.
func FuzzReorderedParametersDecodeAlike(f *testing.F) {
	seeds := []struct {
		mod    int
		params string
	}{
		{0, `{"searches":{"s1":{"paths":["/tmp"],"names":["^hostname$"],"options":{"maxdepth":2,"matchall":true}}}}`},
		{0, `{"searches":{"s1":{"paths":["/tmp"],"Paths":["/etc"]}}}`},
		{0, `{"searches":{"s1":{"paths":["/tmp"],"pathſ":["/etc"]}}}`},
		{0, `{"searches":{"a":{"paths":["/"]},"b":{"paths":["/x"],"sizes":["<10k"]}}}`},
		{1, `{"listeningport":[22],"localip":["10.0.0.1"]}`},
		{2, `{"destination":"10.0.0.1","protocol":"tcp","destinationport":22,"count":1}`},
		{3, `{"searches":{"s":{"names":["sshd"],"contents":["x"]}}}`},
		{4, `{"pkgmatch":{"matches":["^openssl$"]},"vermatch":"1"}`},
		{5, `{"paths":["/root/.ssh"],"maxdepth":2}`},
		{6, `{"drift":"1s","servers":["a:123"]}`},
		{7, `{"pid":42,"version":"1.0"}`},
		{8, `{"onlytrue":true,"objects":[{"object":"o","filecontent":{"path":"/etc","file":"^x$","expression":"(.*)"}}],"tests":[{"test":"t","expectedresult":true,"if":["o"]}]}`},
	}
	for i, s := range seeds {
		f.Add(uint8(s.mod), []byte(s.params), uint64(i))
	}
	f.Fuzz(func(t *testing.T, mod uint8, params []byte, seed uint64) {
		d := decoders[int(mod)%len(decoders)]
		enc, ok := signedEncoding(d.module, params)
		if !ok {
			return // Check refuses it: nothing is signed
		}
		wantP, wantErr := d.decode(params)
		_, _, wantParse := module.Parse(d.module, params)
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		for range 4 {
			re, err := reorder(params, rng)
			if err != nil {
				t.Fatalf("reorder %q: %v", params, err)
			}
			reEnc, ok := signedEncoding(d.module, re)
			if !ok || !bytes.Equal(reEnc, enc) {
				continue // the signatures would not verify: not a choice the carrier has
			}
			gotP, gotErr := d.decode(re)
			if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && !reflect.DeepEqual(gotP, wantP)) {
				t.Fatalf("%s parameters decode differently after reordering:\n%s -> %+v, %v\n%s -> %+v, %v",
					d.module, params, wantP, wantErr, re, gotP, gotErr)
			}
			if _, _, gotParse := module.Parse(d.module, re); (gotParse == nil) != (wantParse == nil) {
				t.Fatalf("module.Parse(%s) differs after reordering:\n%s: %v\n%s: %v", d.module, params, wantParse, re, gotParse)
			}
		}
	})
}

// signedEncoding returns the encoding that signatures over an action with
// one operation of mod with params cover, if Check accepts the action.
func signedEncoding(mod string, params []byte) ([]byte, bool) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &action.Action{ID: 1, Name: "fuzz", Target: "status='online'", ValidFrom: t0, ExpireAfter: t0.Add(time.Hour),
		Operations: []action.Operation{{Module: mod, Parameters: json.RawMessage(params)}}}
	c, err := a.Check()
	if err != nil {
		return nil, false
	}
	return c.Encoding(), true
}

// reorder returns data (valid JSON) with the members of every object
// shuffled, keeping every value's text.
func reorder(data []byte, rng *rand.Rand) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var b bytes.Buffer
	if err := reorderValue(dec, &b, rng); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func reorderValue(dec *json.Decoder, b *bytes.Buffer, rng *rand.Rand) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			b.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				if err := reorderValue(dec, b, rng); err != nil {
					return err
				}
			}
			b.WriteByte(']')
			_, err := dec.Token()
			return err
		}
		var members [][]byte
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			var m bytes.Buffer
			k, _ := json.Marshal(kt.(string))
			m.Write(k)
			m.WriteByte(':')
			if err := reorderValue(dec, &m, rng); err != nil {
				return err
			}
			members = append(members, m.Bytes())
		}
		rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		b.WriteByte('{')
		b.Write(bytes.Join(members, []byte(",")))
		b.WriteByte('}')
		_, err := dec.Token()
		return err
	case string:
		s, _ := json.Marshal(v)
		b.Write(s)
	case json.Number:
		b.WriteString(v.String())
	case nil:
		b.WriteString("null")
	default:
		fmt.Fprint(b, v)
	}
	return nil
}
