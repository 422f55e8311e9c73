package dialer

import "testing"

func TestIsAMQP(t *testing.T) {
	tests := map[string]bool{
		"amqp://rabbit:5672/mig":        true,
		"AMQPS://rabbit:5671/":          true,
		"nats://127.0.0.1:4222":         false,
		"tls://n1:12222,tls://n2:12222": false,
		"":                              false,
	}
	for url, want := range tests {
		if got := IsAMQP(url); got != want {
			t.Errorf("IsAMQP(%q) = %v, want %v", url, got, want)
		}
	}
}
