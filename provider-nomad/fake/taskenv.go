// taskenv.go owns the allocation/task directory layout (as the Nomad client
// builds it), the task environment (host env for raw_exec-like drivers,
// NOMAD_* variables, ports, meta, the task's Env with ${...} interpolation)
// and template rendering (verbatim unless the template's delimiters occur in
// its text, see renderTemplate).
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/hashicorp/nomad/api"
)

// allocDirs creates <data-dir>/alloc/<id>/alloc/{data,logs,tmp}.
func allocDirs(root, allocID string) (string, error) {
	dir := filepath.Join(root, "alloc", allocID)
	for _, d := range []string{"alloc/data", "alloc/logs", "alloc/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// taskDirs creates <alloc dir>/<task>/{local,secrets,tmp}.
func taskDirs(allocDir, task string) (string, error) {
	dir := filepath.Join(allocDir, task)
	for _, d := range []string{"local", "secrets", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func logPath(allocDir, task, typ string) string {
	return filepath.Join(allocDir, "alloc", "logs", fmt.Sprintf("%s.%s.0", task, typ))
}

// envFor builds the environment map of a task (without the host env).
func envFor(a *allocInfo, t *api.Task, taskDir string, node *api.Node) map[string]string {
	job := a.job
	env := map[string]string{
		"NOMAD_ALLOC_DIR":      filepath.Join(a.dir, "alloc"),
		"NOMAD_TASK_DIR":       filepath.Join(taskDir, "local"),
		"NOMAD_SECRETS_DIR":    filepath.Join(taskDir, "secrets"),
		"NOMAD_ALLOC_ID":       a.id,
		"NOMAD_SHORT_ALLOC_ID": a.id[:8],
		"NOMAD_ALLOC_NAME":     a.name,
		"NOMAD_ALLOC_INDEX":    strconv.Itoa(allocIndex(a.name)),
		"NOMAD_TASK_NAME":      t.Name,
		"NOMAD_GROUP_NAME":     *a.tg.Name,
		"NOMAD_JOB_NAME":       deref(job.Name),
		"NOMAD_JOB_ID":         *job.ID,
		"NOMAD_JOB_PARENT_ID":  deref(job.ParentID),
		"NOMAD_NAMESPACE":      *job.Namespace,
		"NOMAD_REGION":         deref(job.Region),
		"NOMAD_DC":             node.Datacenter,
	}
	if tr := a.res.Tasks[t.Name]; tr != nil {
		env["NOMAD_CPU_LIMIT"] = strconv.FormatInt(tr.Cpu.CpuShares, 10)
		env["NOMAD_MEMORY_LIMIT"] = strconv.FormatInt(tr.Memory.MemoryMB, 10)
		if tr.Memory.MemoryMaxMB > 0 {
			env["NOMAD_MEMORY_MAX_LIMIT"] = strconv.FormatInt(tr.Memory.MemoryMaxMB, 10)
		}
		if len(tr.Cpu.ReservedCores) > 0 {
			var cs []string
			for _, c := range tr.Cpu.ReservedCores {
				cs = append(cs, strconv.Itoa(int(c)))
			}
			env["NOMAD_CPU_CORES"] = strings.Join(cs, ",")
		}
	}
	for _, m := range []map[string]string{job.Meta, a.tg.Meta, t.Meta} {
		for k, v := range m {
			env["NOMAD_META_"+k] = v
			env["NOMAD_META_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))] = v
		}
	}
	for _, p := range a.res.Shared.Ports {
		val := strconv.Itoa(p.Value)
		inside := val
		if p.To > 0 {
			inside = strconv.Itoa(p.To)
		}
		env["NOMAD_IP_"+p.Label] = p.HostIP
		env["NOMAD_PORT_"+p.Label] = inside
		env["NOMAD_ADDR_"+p.Label] = p.HostIP + ":" + inside
		env["NOMAD_ALLOC_PORT_"+p.Label] = inside
		env["NOMAD_HOST_PORT_"+p.Label] = val
		env["NOMAD_HOST_IP_"+p.Label] = p.HostIP
		env["NOMAD_HOST_ADDR_"+p.Label] = p.HostIP + ":" + val
	}
	return env
}

var interpRe = regexp.MustCompile(`\$\{([^{}]+)\}`)

// interpolate replaces ${NOMAD_...}, ${node.*}, ${attr.*} and ${meta.*}
// like the client's taskenv.ReplaceEnv; unknown references stay verbatim.
func interpolate(s string, env map[string]string, node *api.Node) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return interpRe.ReplaceAllStringFunc(s, func(m string) string {
		k := m[2 : len(m)-1]
		if v, ok := env[k]; ok {
			return v
		}
		if v, ok := resolveTarget(m, node); ok {
			return v
		}
		return m
	})
}

func envList(host bool, env map[string]string) []string {
	var out []string
	if host {
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			if _, over := env[k]; !over {
				out = append(out, kv)
			}
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// renderTemplate renders a template block. Nomad renders templates with
// consul-template (Go text/template plus its own functions). The fake keeps
// the text verbatim when the effective delimiters (LeftDelim, default "{{")
// do not occur in it; otherwise it executes it with text/template using
// those delimiters and a small function set (env, toUpper, toLower,
// trimSpace, split, join, base64Encode, base64Decode); anything else fails
// like a consul-template error would.
func renderTemplate(t *api.Template, env map[string]string) ([]byte, error) {
	text := deref(t.EmbeddedTmpl)
	left, right := deref(t.LeftDelim), deref(t.RightDelim)
	if left == "" {
		left = "{{"
	}
	if right == "" {
		right = "}}"
	}
	if !strings.Contains(text, left) {
		return []byte(text), nil
	}
	tp, err := template.New("tmpl").Delims(left, right).Funcs(templateFuncs(env)).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tp.Execute(&buf, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parseEnvFile parses KEY=VALUE lines (the format of env = true templates).
func parseEnvFile(b []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("error parsing env template line %d: missing '='", n)
		}
		k = strings.TrimSpace(k)
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			if v[0] == '"' {
				if uq, err := strconv.Unquote(v); err == nil {
					v = uq
				} else {
					v = v[1 : len(v)-1]
				}
			} else {
				v = v[1 : len(v)-1]
			}
		}
		out[k] = v
	}
	return out, sc.Err()
}

// writeTemplates renders the task's templates into the task dir and returns
// the env vars of env = true templates.
func writeTemplates(t *api.Task, taskDir string, env map[string]string, node *api.Node) (map[string]string, error) {
	extra := map[string]string{}
	for _, tmpl := range t.Templates {
		var data []byte
		if deref(tmpl.EmbeddedTmpl) == "" && deref(tmpl.SourcePath) != "" {
			src := interpolate(*tmpl.SourcePath, env, node)
			if !filepath.IsAbs(src) {
				src = filepath.Join(taskDir, src)
			}
			b, err := os.ReadFile(src)
			if err != nil {
				return nil, fmt.Errorf("Template failed: %v", err)
			}
			c := *tmpl
			c.EmbeddedTmpl = ptr(string(b))
			tmpl = &c
		}
		data, err := renderTemplate(tmpl, env)
		if err != nil {
			return nil, fmt.Errorf("Template failed: %v", err)
		}
		dest := interpolate(deref(tmpl.DestPath), env, node)
		if dest == "" {
			return nil, fmt.Errorf("Template failed: template has no destination")
		}
		full := filepath.Join(taskDir, filepath.Clean("/"+dest))
		perm := os.FileMode(0o644)
		if p := deref(tmpl.Perms); p != "" {
			if v, err := strconv.ParseUint(p, 8, 32); err == nil {
				perm = os.FileMode(v)
			}
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o777); err != nil {
			return nil, fmt.Errorf("Template failed: %v", err)
		}
		if err := os.WriteFile(full, data, perm); err != nil {
			return nil, fmt.Errorf("Template failed: %v", err)
		}
		_ = os.Chmod(full, perm)
		if deref(tmpl.Envvars) {
			kv, err := parseEnvFile(data)
			if err != nil {
				return nil, fmt.Errorf("Template failed: %v", err)
			}
			for k, v := range kv {
				extra[k] = v
			}
		}
	}
	return extra, nil
}
