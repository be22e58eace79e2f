// templatefuncs.go owns the small consul-template-like function set used
// when a template's delimiters occur in its text (see renderTemplate).
package main

import (
	"encoding/base64"
	"strings"
	"text/template"
)

func templateFuncs(env map[string]string) template.FuncMap {
	return template.FuncMap{
		"env": func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return ""
		},
		"toUpper":   strings.ToUpper,
		"toLower":   strings.ToLower,
		"trimSpace": strings.TrimSpace,
		"split":     func(sep, s string) []string { return strings.Split(s, sep) },
		"join":      func(sep string, xs []string) string { return strings.Join(xs, sep) },
		"base64Encode": func(s string) string {
			return base64.StdEncoding.EncodeToString([]byte(s))
		},
		"base64Decode": func(s string) (string, error) {
			b, err := base64.StdEncoding.DecodeString(s)
			return string(b), err
		},
	}
}
