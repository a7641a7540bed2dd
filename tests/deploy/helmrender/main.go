// helmrender renders a Helm chart's templates the way `helm template` does, for the chart
// tests: no helm binary is reachable from our CI, but Go's text/template (the engine Helm uses)
// and sprig (Helm's function library) are Debian packages (golang-go,
// golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v2-dev/.v3-dev). It implements what
// Helm adds on top of them and what this chart uses: the .Values/.Release/.Chart/.Template/
// .Files objects, include, tpl, required, toYaml, fromYaml, fromYamlArray, toJson. It runs with
// missingkey=error, like `helm lint --strict`: a template that reads a value absent from
// values.yaml (and the given overrides) fails.
//
// Usage: helmrender CHART_DIR [VALUES_FILE...]   (manifests on stdout, "---" separated)
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	yaml2 "gopkg.in/yaml.v2"
	yaml3 "gopkg.in/yaml.v3"
)

type files struct{ root string }

// Get returns a chart file's content, or "" when it does not exist (as Helm does).
func (f files) Get(name string) string {
	data, err := os.ReadFile(filepath.Join(f.root, name))
	if err != nil {
		return ""
	}
	return string(data)
}

func readYaml(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml3.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// merge overlays b on a: maps merge recursively, null deletes the key, everything else
// replaces (Helm's coalescing of user values over the chart's).
func merge(a, b map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v == nil {
			delete(out, k)
			continue
		}
		if bm, ok := v.(map[string]interface{}); ok {
			if am, ok := out[k].(map[string]interface{}); ok {
				out[k] = merge(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func toYaml(v interface{}) string {
	data, err := yaml2.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYaml(s string) map[string]interface{} {
	out := map[string]interface{}{}
	if err := yaml3.Unmarshal([]byte(s), &out); err != nil {
		out["Error"] = err.Error()
	}
	return out
}

func fromYamlArray(s string) []interface{} {
	out := []interface{}{}
	if err := yaml3.Unmarshal([]byte(s), &out); err != nil {
		return []interface{}{err.Error()}
	}
	return out
}

func run(chart string, valueFiles []string) error {
	values, err := readYaml(filepath.Join(chart, "values.yaml"))
	if err != nil {
		return err
	}
	for _, path := range valueFiles {
		over, err := readYaml(path)
		if err != nil {
			return err
		}
		values = merge(values, over)
	}
	meta, err := readYaml(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		return err
	}
	chartObj := map[string]interface{}{
		"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"],
	}
	release := map[string]interface{}{
		"Name": "gadgetwatch", "Namespace": "gadgetwatch", "Service": "Helm",
		"IsInstall": true, "IsUpgrade": false,
	}

	t := template.New("chart").Option("missingkey=error")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYaml
	funcs["fromYaml"] = fromYaml
	funcs["fromYamlArray"] = fromYamlArray
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var b strings.Builder
		err := t.ExecuteTemplate(&b, name, data)
		return b.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		inner, err := t.Clone()
		if err != nil {
			return "", err
		}
		inner, err = inner.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		err = inner.Execute(&b, data)
		return b.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	t.Funcs(funcs)

	paths, err := filepath.Glob(filepath.Join(chart, "templates", "*"))
	if err != nil {
		return err
	}
	sort.Strings(paths)
	var rendered []string
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		name := filepath.Join(filepath.Base(chart), "templates", filepath.Base(path))
		if _, err := t.New(name).Parse(string(data)); err != nil {
			return err
		}
		rendered = append(rendered, name)
	}
	base := filepath.Join(filepath.Base(chart), "templates")
	for _, name := range rendered {
		if strings.HasPrefix(filepath.Base(name), "_") || !strings.HasSuffix(name, ".yaml") {
			continue
		}
		scope := map[string]interface{}{
			"Values": values, "Release": release, "Chart": chartObj,
			"Template": map[string]interface{}{"Name": name, "BasePath": base},
			"Files":    files{root: chart},
		}
		var b strings.Builder
		if err := t.ExecuteTemplate(&b, name, scope); err != nil {
			return err
		}
		if text := strings.TrimSpace(b.String()); text != "" {
			fmt.Printf("---\n# Source: %s\n%s\n", name, text)
		}
	}
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: helmrender CHART_DIR [VALUES_FILE...]")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "helmrender:", err)
		os.Exit(1)
	}
}
