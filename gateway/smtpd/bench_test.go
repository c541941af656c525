package smtpd

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"cafgate/gateway/intake"
	"cafgate/mailbox"
)

// BenchmarkSubmit is the whole acceptance path of one message on one signed-in implicit-TLS session:
// the SMTP dialogue, TLS, the lineGuard, go-smtp's data reader, the real intake and the real store
// (encryption, group commit, fsync). It is for profiling (-cpuprofile), not a timed test:
//
//	go test -run '^$' -bench BenchmarkSubmit -cpuprofile cpu.prof ./gateway/smtpd/
func BenchmarkSubmit(b *testing.B) {
	for _, size := range []int{10 << 10, 1 << 20} {
		for _, conns := range []int{1, 10} {
			b.Run(fmt.Sprintf("%dKiB/c%d", size>>10, conns), func(b *testing.B) { benchSubmit(b, size, conns) })
		}
	}
}

func benchSubmit(b *testing.B, size, conns int) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st, err := mailbox.Open(context.Background(), mailbox.Options{Path: filepath.Join(b.TempDir(), "m.db"), ContentKey: key})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	in := intake.New(fakeDirectory{}, st, allowAll{}, slog.New(slog.DiscardHandler), nil)
	h := start(b, in, Options{Log: slog.New(slog.DiscardHandler)})
	raw := make([]byte, size*3/4)
	_, _ = rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var body strings.Builder
	body.WriteString("From: alice@a.example\r\nSubject: [CAF-2026-000001] bench\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\r\n.\r\n")
	msg := body.String()
	clients := make(chan *client, conns)
	for range conns {
		clients <- h.signedIn(b)
	}
	b.SetBytes(int64(len(msg)))
	b.SetParallelism((conns + 1) / 2) // RunParallel starts parallelism × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := <-clients
		defer func() { clients <- c }()
		for pb.Next() {
			c.send("MAIL FROM:<alice@a.example>\r\nRCPT TO:<bob@b.example>\r\nDATA\r\n")
			c.expect("250 ")
			c.expect("250 ")
			c.expect("354 ")
			c.send(msg)
			c.expect("250 2.0.0 Accepted")
		}
	})
}
