// Command kubevalidate checks rendered Kubernetes objects (a multi-document YAML stream, as
// `helm template` prints it) against the Kubernetes API's own OpenAPI schema: the swagger.json
// that the k8s.io/kubernetes module ships (api/openapi-spec), strict as kubeconform -strict is
// (a field the API does not know is an error). Prometheus Operator objects (ServiceMonitor,
// PrometheusRule) are not in that schema: they are decoded strictly into the operator's own Go
// types (github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring).
//
// Usage: kubevalidate -schema swagger.json [FILE...]   (no FILE: standard input)
// Prints one line per problem ("SOURCE #N Kind/name: path: message") and exits 1 when there
// is any; on success prints "N objects valid" and exits 0.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/yaml"
)

type gvk struct{ group, version, kind string }

func (g gvk) String() string {
	if g.group == "" {
		return g.version + " " + g.kind
	}
	return g.group + "/" + g.version + " " + g.kind
}

type schemas struct {
	definitions map[string]*spec.Schema
	byKind      map[gvk]string
}

// load reads swagger.json and makes it strict: an object schema with properties and no
// additionalProperties refuses other fields, and the two types the API accepts in two JSON
// shapes (IntOrString, Quantity) accept both.
func load(path string) (*schemas, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Definitions map[string]json.RawMessage `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := &schemas{definitions: map[string]*spec.Schema{}, byKind: map[gvk]string{}}
	for name, body := range doc.Definitions {
		var schema spec.Schema
		if err := json.Unmarshal(body, &schema); err != nil {
			return nil, fmt.Errorf("%s: definition %s: %w", path, name, err)
		}
		switch schema.Format {
		case "int-or-string":
			schema.Type, schema.Format = nil, ""
			schema.AnyOf = []spec.Schema{*spec.Int64Property(), *spec.StringProperty()}
		}
		if name == "io.k8s.apimachinery.pkg.api.resource.Quantity" {
			schema.Type = nil
			schema.AnyOf = []spec.Schema{*spec.Float64Property(), *spec.StringProperty()}
		}
		strict(&schema)
		s.definitions[name] = &schema
		if kinds, ok := schema.Extensions["x-kubernetes-group-version-kind"].([]interface{}); ok {
			for _, k := range kinds {
				m, _ := k.(map[string]interface{})
				key := gvk{fmt.Sprint(m["group"]), fmt.Sprint(m["version"]), fmt.Sprint(m["kind"])}
				s.byKind[key] = name
			}
		}
	}
	if len(s.byKind) == 0 {
		return nil, fmt.Errorf("%s: no definition names a group, version and kind: not the Kubernetes OpenAPI schema", path)
	}
	return s, nil
}

func strict(schema *spec.Schema) {
	if len(schema.Properties) > 0 && schema.AdditionalProperties == nil {
		schema.AdditionalProperties = &spec.SchemaOrBool{Allows: false}
	}
	for name, property := range schema.Properties {
		strict(&property)
		schema.Properties[name] = property
	}
	if schema.Items != nil && schema.Items.Schema != nil {
		strict(schema.Items.Schema)
	}
	if schema.AdditionalProperties != nil && schema.AdditionalProperties.Schema != nil {
		strict(schema.AdditionalProperties.Schema)
	}
}

// validator resolves a "$ref" as it meets one (the validator itself refuses them), so the
// recursive definitions need no expansion.
func (s *schemas) validator(schema *spec.Schema, path string) validate.ValueValidator {
	for schema.Ref.String() != "" {
		ref := schema.Ref.String()
		target, ok := s.definitions[strings.TrimPrefix(ref, "#/definitions/")]
		if !ok {
			panic("unresolved reference " + ref)
		}
		schema = target
	}
	hook := func(o *validate.SchemaValidatorOptions) {
		o.NewValidatorForField = func(_ string, child *spec.Schema, _ interface{}, p string, _ strfmt.Registry, _ ...validate.Option) validate.ValueValidator {
			return s.validator(child, p)
		}
		o.NewValidatorForIndex = func(_ int, child *spec.Schema, _ interface{}, p string, _ strfmt.Registry, _ ...validate.Option) validate.ValueValidator {
			return s.validator(child, p)
		}
	}
	return validate.NewSchemaValidator(schema, nil, path, strfmt.Default, hook)
}

// strictDecode decodes an object into its Go type, refusing unknown fields.
func strictDecode(body []byte, into interface{}) error {
	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.DisallowUnknownFields()
	return decoder.Decode(into)
}

var operatorKinds = map[gvk]func() interface{}{
	{"monitoring.coreos.com", "v1", "ServiceMonitor"}: func() interface{} { return &monitoringv1.ServiceMonitor{} },
	{"monitoring.coreos.com", "v1", "PodMonitor"}:     func() interface{} { return &monitoringv1.PodMonitor{} },
	{"monitoring.coreos.com", "v1", "PrometheusRule"}: func() interface{} { return &monitoringv1.PrometheusRule{} },
}

// check returns the problems of one object, each a line without the source prefix.
func (s *schemas) check(body []byte) (string, []string) {
	var object map[string]interface{}
	if err := json.Unmarshal(body, &object); err != nil {
		return "?", []string{err.Error()}
	}
	apiVersion, _ := object["apiVersion"].(string)
	kind, _ := object["kind"].(string)
	meta, _ := object["metadata"].(map[string]interface{})
	name, _ := meta["name"].(string)
	label := kind + "/" + name
	group, version, found := strings.Cut(apiVersion, "/")
	if !found {
		group, version = "", apiVersion
	}
	key := gvk{group, version, kind}
	if apiVersion == "" || kind == "" {
		return label, []string{"apiVersion and kind are required"}
	}
	if name == "" {
		return label, []string{"metadata.name is required"}
	}
	if make, ok := operatorKinds[key]; ok {
		if err := strictDecode(body, make()); err != nil {
			return label, []string{err.Error()}
		}
		return label, nil
	}
	definition, ok := s.byKind[key]
	if !ok {
		return label, []string{fmt.Sprintf("no schema for %s in this Kubernetes release", key)}
	}
	result := s.validator(s.definitions[definition], "").Validate(object)
	var problems []string
	for _, err := range result.Errors {
		problems = append(problems, err.Error())
	}
	sort.Strings(problems)
	return label, problems
}

func documents(r io.Reader) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		body, err := yaml.YAMLToJSON(chunk)
		if err != nil {
			return nil, err
		}
		if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || string(trimmed) == "null" {
			continue
		}
		docs = append(docs, body)
	}
}

func main() {
	schemaPath := flag.String("schema", "", "the Kubernetes OpenAPI v2 schema (api/openapi-spec/swagger.json of k8s.io/kubernetes)")
	flag.Parse()
	if *schemaPath == "" {
		fmt.Fprintln(os.Stderr, "kubevalidate: -schema is required")
		os.Exit(64)
	}
	s, err := load(*schemaPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubevalidate:", err)
		os.Exit(64)
	}
	sources := flag.Args()
	if len(sources) == 0 {
		sources = []string{"-"}
	}
	valid, failed := 0, 0
	for _, source := range sources {
		var r io.Reader = os.Stdin
		if source != "-" {
			file, err := os.Open(source)
			if err != nil {
				fmt.Fprintln(os.Stderr, "kubevalidate:", err)
				os.Exit(64)
			}
			defer file.Close()
			r = file
		}
		docs, err := documents(r)
		if err != nil {
			fmt.Printf("%s: not YAML: %v\n", source, err)
			failed++
			continue
		}
		for i, body := range docs {
			label, problems := s.check(body)
			for _, problem := range problems {
				fmt.Printf("%s #%d %s: %s\n", source, i+1, label, problem)
			}
			if len(problems) > 0 {
				failed++
			} else {
				valid++
			}
		}
	}
	if failed > 0 {
		fmt.Printf("%d objects valid, %d invalid\n", valid, failed)
		os.Exit(1)
	}
	fmt.Printf("%d objects valid\n", valid)
}
