package validate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// fetch GETs url (or POSTs body when it is not nil) within FetchTimeout and reads at most max bytes of a
// 200 answer. Only http and https URLs are fetched, and file URLs of a GET within Options.CRLDirs.
func (v *Validator) fetch(ctx context.Context, rawURL string, body []byte, contentType string, max int64) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err == nil && u.Scheme == "file" && body == nil && len(v.opts.CRLDirs) > 0 {
		return v.readFileURL(u, max)
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q is not an http URL", rawURL)
	}
	ctx, cancel := context.WithTimeout(ctx, v.opts.FetchTimeout)
	defer cancel()
	method, rd := http.MethodGet, io.Reader(nil)
	if body != nil {
		method, rd = http.MethodPost, bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := v.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", u.Redacted(), resp.Status)
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%s: answer of %d bytes is over the limit of %d", u.Redacted(), resp.ContentLength, max)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Redacted(), err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: answer is over the limit of %d bytes", u.Redacted(), max)
	}
	return data, nil
}

// readFileURL reads a file URL's regular file of at most max bytes, if it lies in one of
// Options.CRLDirs (after symbolic links are resolved).
func (v *Validator) readFileURL(u *url.URL, max int64) ([]byte, error) {
	if (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("%q is not a local absolute file URL", u.Redacted())
	}
	path, err := filepath.EvalSymlinks(filepath.Clean(u.Path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Redacted(), err)
	}
	allowed := false
	for _, d := range v.opts.CRLDirs {
		if rd, err := filepath.EvalSymlinks(d); err == nil {
			d = rd
		}
		if rel, err := filepath.Rel(d, path); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != "." {
			allowed = true
			break
		}
	}
	if !allowed {
		return nil, fmt.Errorf("%s is outside the directories CRL files are read from", u.Redacted())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Redacted(), err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", u.Redacted())
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes is over the limit of %d", u.Redacted(), st.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is over the limit of %d bytes", u.Redacted(), max)
	}
	return data, nil
}
