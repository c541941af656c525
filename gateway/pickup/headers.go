// Web security headers of every pickup answer, and the checks every form post passes before it is
// read: HTTPS only, a same-origin request, and (in session.go) the CSRF token.

package pickup

import (
	"net/http"
	"net/url"
)

// pageCSP allows the page's own style sheet and the QR code's data: image, and nothing else: no
// script at all, no frames, forms only to the gateway itself.
const pageCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// downloadCSP sandboxes a downloaded document should a browser render it anyway.
const downloadCSP = "default-src 'none'; frame-ancestors 'none'; sandbox"

// setSecurityHeaders sets the headers every answer carries (they replace any a wrapping server set).
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Strict-Transport-Security", "max-age=31536000")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	h.Set("X-Robots-Tag", "noindex, nofollow")
}

// sameOrigin reports whether a form post comes from a page of this gateway. Sec-Fetch-Site, which
// pages cannot forge, must say same-origin when the browser sends it; then Origin is not looked at,
// since under Referrer-Policy no-referrer a browser sends "Origin: null" even for its own forms.
// Without Sec-Fetch-Site (older browsers, scripts) an Origin other than null must be this host over
// HTTPS. SameSite=Strict cookies and the CSRF token are the main defence; this refuses early.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin"
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Scheme == "https" && u.Host == r.Host
}
