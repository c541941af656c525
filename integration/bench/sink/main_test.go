package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestSinkCounts: copies are counted per recipient, mail with a null reverse path apart, and the
// expected count (set late, as -expect-file does) ends the wait.
func TestSinkCounts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{done: make(chan struct{})}
	srv := smtp.NewServer(backend{c})
	srv.Domain = "sink.localhost"
	go srv.Serve(l)
	defer srv.Close()
	send := func(from string, to ...string) {
		t.Helper()
		cl, err := smtp.Dial(l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.SendMail(from, to, strings.NewReader("Subject: x\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	send("a@x.test", "b@y.test", "c@y.test", "d@z.test")
	send("", "a@x.test") // a report to the sender
	send("a@x.test", "e@y.test")
	c.setExpect(4)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("not done: %+v", c.result())
	}
	r := c.result()
	if r.Recipients != 4 || r.Messages != 2 || r.NullSender != 1 || !r.Complete || r.Last < r.First || r.First == 0 {
		t.Fatalf("%+v", r)
	}
}
