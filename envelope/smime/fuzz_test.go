package smime

import (
	"bytes"
	"testing"

	"cafgate/envelope/cms"
)

// FuzzOpen feeds arbitrary messages to Open with a decryption key and trust anchors: it must never
// panic, and whatever it accepts as signed must carry a signer.
func FuzzOpen(f *testing.F) {
	fx := getFixture(f)
	to := &cms.EncryptOptions{Recipients: []cms.Recipient{{Cert: fx.gateway.Cert}}}
	for _, o := range []SealOptions{
		{Signer: fx.signer(fx.alice)},
		{Signer: fx.signer(fx.alice), Opaque: true},
		{Signer: fx.signer(fx.alice), Encrypt: to},
		{Encrypt: &cms.EncryptOptions{Cipher: cms.AES256CBC, Recipients: to.Recipients}},
	} {
		var out bytes.Buffer
		if err := Seal(&out, []byte(sample), o); err != nil {
			f.Fatal(err)
		}
		f.Add(out.Bytes())
	}
	f.Add([]byte(sample))
	f.Add([]byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\n\r\n--b\r\n\r\n--b--"))
	opts := OpenOptions{Decrypter: fx.decrypter(fx.gateway), Verify: cms.VerifyOptions{Roots: fx.ca.Roots}}
	f.Fuzz(func(t *testing.T, msg []byte) {
		o, err := Open(msg, opts)
		if err != nil {
			return
		}
		for _, l := range o.Layers {
			if (l.Kind == SignedDetached || l.Kind == SignedOpaque) && (l.Signature == nil || l.Signature.Signer == nil) {
				t.Fatal("signed layer without signer")
			}
		}
		_, _ = o.Message()
	})
}
