package validate

import (
	"context"
	"testing"
)

// BenchmarkValidateWarmCRL is one encryption-certificate validation (RSA-2048 leaf from the development
// CA, chain, usage, mail, CRL lookup) with the CRL already cached: the cost per recipient at delivery.
func BenchmarkValidateWarmCRL(b *testing.B) {
	f := newDevFixture(b)
	v := f.validator(b, false, nil)
	req := Request{Cert: f.good, Mail: "good@health.test", Agency: "x", Usage: ForEncryption}
	if _, err := v.Validate(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Validate(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := f.srv.count(f.crlURLPath); n != 1 {
		b.Fatalf("CRL fetched %d times", n)
	}
}
