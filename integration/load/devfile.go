package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// devFile is the part of `cafgate dev`'s DIR/dev.json the load tool reads.
type devFile struct {
	CACert   string            `json:"ca_cert"`
	Hostname string            `json:"hostname"`
	Listen   map[string]string `json:"listen"`
	Accounts []devAccount      `json:"accounts"`
	Episodes []devEpisode      `json:"episodes"`
}

// devEpisode is a sample episode: a package must name one, and its sender be on its team.
type devEpisode struct {
	Reference string   `json:"reference"`
	Lead      string   `json:"lead"`
	Team      []string `json:"team"`
}

type devAccount struct {
	Mail      string   `json:"mail"`
	Password  string   `json:"password"`
	Roles     []string `json:"roles"`
	Status    string   `json:"status"`
	Sensitive bool     `json:"sensitive_service"`
	Cert      string   `json:"cert"`
}

// applyDev fills the settings the command line left unset (set holds the flag names given) from a
// dev.json: the submission address with STARTTLS against the development CA, the first sample
// episode's reference, and as sender and recipient two distinct active practitioners outside sensitive
// services, on that episode's team when there is one (the sender's password for AUTH).
func applyDev(c *config, path string, set map[string]bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var d devFile
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !set["addr"] {
		if c.addr = d.Listen["submission"]; c.addr == "" {
			return fmt.Errorf("%s: no listen.submission", path)
		}
	}
	c.startTLS = true
	if !set["ca"] {
		c.caFile = d.CACert
	}
	if !set["servername"] {
		c.serverName = d.Hostname
	}
	team := map[string]bool{}
	if len(d.Episodes) > 0 {
		ep := d.Episodes[0]
		if !set["episode"] {
			c.episode = ep.Reference
		}
		team[ep.Lead] = true
		for _, m := range ep.Team {
			team[m] = true
		}
	}
	sender, err := d.pick(c.from, "", team)
	if err != nil {
		return fmt.Errorf("%s: sender: %w", path, err)
	}
	c.from = sender.Mail
	if !set["auth"] {
		c.user, c.pass = sender.Mail, sender.Password
	}
	if !set["to"] && c.rcpts <= 1 {
		rcpt, err := d.pick("", sender.Mail, team)
		if err != nil {
			return fmt.Errorf("%s: recipient: %w", path, err)
		}
		c.to = []string{rcpt.Mail}
	} else if !set["to"] {
		if c.to, err = d.pickCertified(c.rcpts, sender.Mail, team); err != nil {
			return fmt.Errorf("%s: recipients: %w", path, err)
		}
	}
	return nil
}

// pickCertified returns n distinct usable accounts other than not, each with an S/MIME certificate
// (so every copy to them is signed and encrypted), from among team when team is not empty.
func (d *devFile) pickCertified(n int, not string, team map[string]bool) ([]string, error) {
	var out []string
	for _, a := range d.Accounts {
		if len(out) < n && a.Mail != not && a.Status == "active" && !a.Sensitive && a.Cert != "" &&
			slices.Contains(a.Roles, "practitioner") && (len(team) == 0 || team[a.Mail]) {
			out = append(out, a.Mail)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("only %d active practitioners with a certificate outside sensitive services, %d asked for", len(out), n)
	}
	return out, nil
}

// pick returns the account named mail, or (mail empty) the first usable account other than not, from
// among team when team is not empty.
func (d *devFile) pick(mail, not string, team map[string]bool) (devAccount, error) {
	for _, a := range d.Accounts {
		if mail != "" && a.Mail == mail {
			return a, nil
		}
		if mail == "" && a.Mail != not && a.Status == "active" && !a.Sensitive && a.Password != "" &&
			slices.Contains(a.Roles, "practitioner") && (len(team) == 0 || team[a.Mail]) {
			return a, nil
		}
	}
	if mail != "" {
		return devAccount{}, fmt.Errorf("no account %s", mail)
	}
	return devAccount{}, fmt.Errorf("no active practitioner outside sensitive services")
}
