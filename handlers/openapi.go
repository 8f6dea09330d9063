package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// The API description, GET /v1/openapi.json, is an OpenAPI 3.1 document built
// from two sources that the server already has: the route table (every route
// registered through Server.route) and the collection definitions of package
// runmerge. Each route is looked up in a table of operations below; a route
// without an entry is still listed, marked with undescribedExtension, so the
// document never hides a route, and the tests fail until it is described.

// undescribedExtension marks an operation for a route that has no entry in
// the operations table.
const undescribedExtension = "x-runmerge-undescribed"

// openAPIHandler returns the handler of GET /v1/openapi.json. The document
// is built once, on the first request, when every route is registered.
func (s *Server) openAPIHandler() echo.HandlerFunc {
	build := sync.OnceValues(func() ([]byte, error) {
		return buildOpenAPI(s.Routes())
	})
	return func(c echo.Context) error {
		if _, err := parseQuery(c); err != nil {
			return err
		}
		doc, err := build()
		if err != nil {
			return err
		}
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, doc)
	}
}

// buildOpenAPI returns the OpenAPI document of routes, which maps
// "METHOD /path" (Echo's syntax, :name for a path parameter) to the action of
// each route.
func buildOpenAPI(routes map[string]runmerge.Action) ([]byte, error) {
	ops := operations()
	paths := map[string]obj{}
	keys := make([]string, 0, len(routes))
	for k := range routes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		method, path, ok := strings.Cut(key, " ")
		if !ok {
			return nil, fmt.Errorf("openapi: route %q is not METHOD /path", key)
		}
		op, ok := ops[key]
		if !ok {
			op = undescribed(key)
		}
		if routes[key] == runmerge.ActionPublic {
			op["security"] = []any{}
		}
		op["operationId"] = operationID(method, path)
		oaPath, params := openAPIPath(path)
		item, ok := paths[oaPath]
		if !ok {
			item = obj{}
			if len(params) > 0 {
				item["parameters"] = params
			}
			paths[oaPath] = item
		}
		item[strings.ToLower(method)] = op
	}
	doc := obj{
		"openapi": "3.1.0",
		"info": obj{
			"title":   "Runmerge API",
			"version": "1",
			"description": "Multi-tenant event data: tenants, and the records of seven " +
				"collections (events, people, sessions, exhibitors, sponsors, tickets, " +
				"resources), each tenant in a file of its own. Times are RFC 3339, written " +
				"by the server in UTC with millisecond precision. Every 4xx and 5xx body " +
				"is application/problem+json.",
		},
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"security":          []any{obj{"apiKey": []any{}}, obj{"bearer": []any{}}},
		"paths":             paths,
		"components": obj{
			"schemas": schemas(),
			"responses": obj{"Problem": problemResponse("A problem (RFC 9457): what went " +
				"wrong, a code to act on, and for validation the field errors.")},
			"securitySchemes": securitySchemes(),
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// obj is a JSON object of the document.
type obj = map[string]any

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// openAPIPath turns an Echo path into an OpenAPI path, /v1/events/:id into
// /v1/events/{id}, and returns the path parameters it declares.
func openAPIPath(path string) (string, []any) {
	var params []any
	for _, m := range echoParam.FindAllStringSubmatch(path, -1) {
		params = append(params, obj{
			"name": m[1], "in": "path", "required": true,
			"schema":      obj{"type": "string"},
			"description": "The id of the " + pathNoun(path) + ".",
		})
	}
	return echoParam.ReplaceAllString(path, "{$1}"), params
}

// pathNoun names what the last path parameter of path identifies.
func pathNoun(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/v1/"), "/")
	if c, ok := runmerge.CollectionByName(parts[0]); ok {
		return c.Kind
	}
	return strings.TrimSuffix(parts[0], "s")
}

// operationID makes a unique id from a route: "GET /v1/events/:id" becomes
// "get_v1_events_id".
func operationID(method, path string) string {
	id := strings.ToLower(method) + strings.NewReplacer("/", "_", ":", "", ".", "_", "-", "_").Replace(path)
	return strings.TrimSuffix(id, "_")
}

func undescribed(key string) obj {
	return obj{
		"summary":            "Undescribed route " + key,
		"description":        "TODO: this route has no entry in the operations table of handlers/openapi.go.",
		undescribedExtension: true,
		"responses":          obj{"default": problemResponse("Any answer.")},
	}
}

// operations describes every route the server knows how to describe, keyed
// as Server.Routes keys them.
func operations() map[string]obj {
	ops := map[string]obj{
		"GET /healthz": {
			"summary":     "Liveness",
			"description": "Answers 200 while the process runs. Needs no key.",
			"tags":        []any{"operations"},
			"responses": obj{
				"200": jsonResponse("The process runs.", obj{
					"type": "object", "required": []any{"status"},
					"properties":           obj{"status": obj{"const": "ok"}},
					"additionalProperties": false,
				}),
				"405": problemRef(),
			},
		},
		"GET /readyz": {
			"summary": "Readiness",
			"description": "Answers 200 once the catalog is open and migrated and the " +
				"server listens, 503 while it starts or shuts down. Needs no key.",
			"tags": []any{"operations"},
			"responses": obj{
				"200": jsonResponse("The server takes requests.", obj{
					"type": "object", "required": []any{"status"},
					"properties":           obj{"status": obj{"const": "ready"}},
					"additionalProperties": false,
				}),
				"405": problemRef(),
				"503": problemRef(),
			},
		},
		"GET /v1/openapi.json": {
			"summary":     "API description",
			"description": "This document: OpenAPI 3.1, listing every route the server registers.",
			"tags":        []any{"operations"},
			"responses": obj{
				"200": jsonResponse("The OpenAPI document.", obj{"type": "object"}),
				"400": problemRef(),
				"405": problemRef(),
			},
		},
	}
	for k, v := range keyOperations() {
		ops[k] = v
	}
	for k, v := range tenantOperations() {
		ops[k] = v
	}
	for k, v := range changeEventOperations() {
		ops[k] = v
	}
	for k, v := range exportOperations() {
		ops[k] = v
	}
	for _, c := range runmerge.Collections() {
		for k, v := range recordOperations(c) {
			ops[k] = v
		}
	}
	return ops
}

func tenantOperations() map[string]obj {
	tenant := ref("Tenant")
	tags := []any{"tenants"}
	return map[string]obj{
		"POST /v1/tenants": {
			"summary": "Create a tenant",
			"description": "Creates a tenant and its file. Without id the server makes one. " +
				"Platform admin keys only.",
			"tags":        tags,
			"requestBody": jsonBody(ref("TenantCreate")),
			"responses": withErrors(obj{
				"201": jsonResponse("The tenant.", tenant, locationHeader()),
			}, 400, 403, 409, 413, 415, 422),
		},
		"GET /v1/tenants": {
			"summary":     "List tenants",
			"description": "The tenants the key may read, ordered by id.",
			"tags":        tags,
			"parameters":  []any{cursorParam(), limitParam()},
			"responses": withErrors(obj{
				"200": jsonResponse("A page of tenants.", pageSchema(tenant)),
			}, 400, 403),
		},
		"GET /v1/tenants/:id": {
			"summary":     "Get a tenant",
			"description": "One tenant, with the stats of its file.",
			"tags":        tags,
			"responses": withErrors(obj{
				"200": jsonResponse("The tenant with its stats.", ref("TenantWithStats")),
			}, 400, 403, 404),
		},
		"PATCH /v1/tenants/:id": {
			"summary":     "Rename, suspend or resume a tenant",
			"description": "A suspended tenant answers 403 tenant_suspended to every data request.",
			"tags":        tags,
			"requestBody": jsonBody(ref("TenantUpdate")),
			"responses": withErrors(obj{
				"200": jsonResponse("The tenant.", tenant),
			}, 400, 403, 404, 413, 415, 422),
		},
		"DELETE /v1/tenants/:id": {
			"summary":     "Delete a tenant",
			"description": "Deletes the tenant, its keys, its webhooks and its file.",
			"tags":        tags,
			"responses":   withErrors(obj{"204": obj{"description": "Deleted."}}, 403, 404),
		},
	}
}

func keyOperations() map[string]obj {
	key := ref("Key")
	tags := []any{"keys"}
	return map[string]obj{
		"POST /v1/keys": {
			"summary": "Create a key",
			"description": "Creates an API key. The answer's key member is the secret, shown " +
				"only here. Without tenantId the key is a platform key (platform admins only); " +
				"a tenant admin creates keys of its own tenant, no wider than itself.",
			"tags":        tags,
			"requestBody": jsonBody(ref("KeyCreate")),
			"responses": withErrors(obj{
				"201": jsonResponse("The key, with its secret.", ref("KeyWithSecret")),
			}, 400, 403, 404, 413, 415, 422),
		},
		"GET /v1/keys": {
			"summary":     "List keys",
			"description": "The keys the caller may see, without their secrets.",
			"tags":        tags,
			"parameters":  []any{cursorParam(), limitParam()},
			"responses": withErrors(obj{
				"200": jsonResponse("A page of keys.", pageSchema(key)),
			}, 400, 403),
		},
		"GET /v1/keys/:id": {
			"summary":     "Get a key",
			"description": "One key, without its secret.",
			"tags":        tags,
			"responses":   withErrors(obj{"200": jsonResponse("The key.", key)}, 400, 403, 404),
		},
		"DELETE /v1/keys/:id": {
			"summary":     "Revoke a key",
			"description": "The key answers 401 from then on.",
			"tags":        tags,
			"responses":   withErrors(obj{"204": obj{"description": "Revoked."}}, 400, 403, 404),
		},
	}
}

// keySchema is an API key as the API shows it; withSecret adds the secret,
// which only the answer to its creation carries.
func keySchema(withSecret bool) obj {
	time := obj{"type": "string", "format": "date-time"}
	nullTime := obj{"type": []any{"string", "null"}, "format": "date-time"}
	roles := []any{runmerge.RoleAdmin, runmerge.RoleEventManager, runmerge.RoleReadOnly}
	props := obj{
		"id":         obj{"type": "string"},
		"name":       obj{"type": "string"},
		"tenantId":   obj{"type": []any{"string", "null"}, "description": "null for a platform key"},
		"role":       obj{"enum": roles},
		"eventIds":   obj{"type": "array", "items": obj{"type": "string"}},
		"createdAt":  time,
		"expiresAt":  nullTime,
		"lastUsedAt": nullTime,
		"revokedAt":  nullTime,
	}
	required := []any{"id", "name", "tenantId", "role", "eventIds", "createdAt"}
	if withSecret {
		props["key"] = obj{"type": "string", "pattern": "^rmk_",
			"description": "The secret; shown only in this answer."}
		required = append(required, "key")
	}
	return obj{"type": "object", "required": required, "properties": props,
		"additionalProperties": false}
}

func keyCreateSchema() obj {
	return obj{
		"type":     "object",
		"required": []any{"role"},
		"properties": obj{
			"name":      obj{"type": "string"},
			"tenantId":  obj{"type": "string", "pattern": tenantIDPattern},
			"role":      obj{"enum": []any{runmerge.RoleAdmin, runmerge.RoleEventManager, runmerge.RoleReadOnly}},
			"eventIds":  obj{"type": "array", "items": obj{"type": "string"}},
			"expiresAt": obj{"type": "string", "format": "date-time"},
		},
		"additionalProperties": false,
	}
}

// recordOperations describes the six routes of collection c.
func recordOperations(c *runmerge.Collection) map[string]obj {
	name := schemaName(c)
	base := "/v1/" + c.Name
	tags := []any{c.Name}
	tenant := tenantIDParam()
	record := ref(name)
	return map[string]obj{
		"GET " + base: {
			"summary": "List " + c.Name,
			"description": "Records in the order of their last change, oldest first. A client " +
				"that pages with updatedAfter and cursor while others write misses no " +
				"record (it may see one twice). Any parameter not listed here is 400 " +
				"invalid_parameter.",
			"tags":       tags,
			"parameters": listParamDocs(c),
			"responses": withErrors(obj{
				"200": jsonResponse("A page of "+c.Name+".", ref(name+"Page")),
			}, 400, 403, 404),
		},
		"POST " + base: {
			"summary":     "Create a " + c.Kind,
			"description": "Creates one " + c.Kind + ". " + idempotencyText,
			"tags":        tags,
			"parameters":  []any{tenant, idempotencyKeyParam()},
			"requestBody": jsonBody(ref(name + "Create")),
			"responses": withErrors(obj{
				"201": jsonResponse("The "+c.Kind+" created.", record, etagHeader(), locationHeader()),
			}, 400, 403, 404, 409, 413, 415, 422),
		},
		"POST " + base + "/bulk": {
			"summary": "Create or update up to 1,000 " + c.Name,
			"description": "One transaction, all or nothing: a record whose sourceId and " +
				"remoteId pair exists is replaced, any other is created. Field errors point " +
				"into the request, such as /records/3/name. " + idempotencyText,
			"tags":        tags,
			"parameters":  []any{tenant, idempotencyKeyParam()},
			"requestBody": jsonBody(ref(name + "Bulk")),
			"responses": withErrors(obj{
				"200": jsonResponse("The records, in input order.", ref(name+"BulkResult")),
			}, 400, 403, 404, 409, 413, 415, 422),
		},
		"GET " + base + "/:id": {
			"summary":     "Get a " + c.Kind,
			"description": "One live " + c.Kind + "; a deleted one is 404.",
			"tags":        tags,
			"parameters":  []any{tenant, boolParam("sourceRawData", "Include sourceRawData.")},
			"responses": withErrors(obj{
				"200": jsonResponse("The "+c.Kind+".", record, etagHeader()),
			}, 400, 403, 404),
		},
		"PATCH " + base + "/:id": {
			"summary": "Change a " + c.Kind,
			"description": "A JSON merge patch (RFC 7396): null removes a field, an object is " +
				"merged member by member, anything else replaces. With If-Match, a stale " +
				"ETag is 412 and changes nothing.",
			"tags":        tags,
			"parameters":  []any{tenant, ifMatchParam()},
			"requestBody": jsonBody(ref(name + "Patch")),
			"responses": withErrors(obj{
				"200": jsonResponse("The "+c.Kind+" as changed.", record, etagHeader()),
			}, 400, 403, 404, 409, 412, 413, 415, 422),
		},
		"DELETE " + base + "/:id": {
			"summary": "Delete a " + c.Kind,
			"description": "The record leaves lists and reads, and stays as a tombstone that " +
				"lists show with includeDeleted=true.",
			"tags":       tags,
			"parameters": []any{tenant, ifMatchParam()},
			"responses": withErrors(obj{"204": obj{"description": "Deleted."}},
				400, 403, 404, 412),
		},
	}
}

const idempotencyText = "With an Idempotency-Key, a repeat with the same key and body " +
	"from the same API key within 24 hours gets the first response and changes nothing; " +
	"the same key with another body is 422; a repeat while the first runs is 409."

// withErrors adds problem responses for statuses, and for those every
// route that needs a key may answer: 401, 405, 429, 500 and 503.
func withErrors(responses obj, statuses ...int) obj {
	for _, s := range append(statuses, 401, 405, 429, 500, 503) {
		responses[strconv.Itoa(s)] = problemRef()
	}
	return responses
}

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func problemRef() obj { return obj{"$ref": "#/components/responses/Problem"} }

func problemResponse(desc string) obj {
	return obj{
		"description": desc,
		"headers":     obj{"X-Request-Id": requestIDHeader()},
		"content":     obj{"application/problem+json": obj{"schema": ref("Problem")}},
	}
}

func jsonResponse(desc string, schema obj, headers ...[2]any) obj {
	h := obj{"X-Request-Id": requestIDHeader()}
	for _, kv := range headers {
		h[kv[0].(string)] = kv[1]
	}
	return obj{
		"description": desc,
		"headers":     h,
		"content":     obj{"application/json": obj{"schema": schema}},
	}
}

func jsonBody(schema obj) obj {
	return obj{"required": true, "content": obj{"application/json": obj{"schema": schema}}}
}

func requestIDHeader() obj {
	return obj{"description": "The request's id, also in problem bodies.", "required": true,
		"schema": obj{"type": "string"}}
}

func etagHeader() [2]any {
	return [2]any{"ETag", obj{"description": `The record's version, quoted: "3".`,
		"required": true, "schema": obj{"type": "string", "pattern": `^"[0-9]+"$`}}}
}

func locationHeader() [2]any {
	return [2]any{"Location", obj{"description": "Where the new resource is.",
		"required": true, "schema": obj{"type": "string"}}}
}

func queryParam(name, desc string, schema obj) obj {
	return obj{"name": name, "in": "query", "description": desc, "schema": schema}
}

func boolParam(name, desc string) obj {
	return queryParam(name, desc, obj{"type": "boolean", "default": false})
}

func tenantIDParam() obj {
	return queryParam("tenantId", "The tenant, for platform keys (required for them); a "+
		"tenant key may name only its own.", obj{"type": "string", "pattern": tenantIDPattern})
}

const tenantIDPattern = `^[a-z0-9][a-z0-9-]{0,62}$`

func cursorParam() obj {
	return queryParam("cursor", "The nextCursor of the previous page; opaque.", obj{"type": "string"})
}

func limitParam() obj {
	return queryParam("limit", "The most items on a page.", obj{"type": "integer",
		"minimum": 1, "maximum": maxLimit, "default": defaultLimit})
}

func idempotencyKeyParam() obj {
	return obj{"name": "Idempotency-Key", "in": "header", "description": idempotencyText,
		"schema": obj{"type": "string", "maxLength": maxIdempotencyKey}}
}

func ifMatchParam() obj {
	return obj{"name": "If-Match", "in": "header",
		"description": `The ETag the change is based on, such as "3", or *.`,
		"schema":      obj{"type": "string"}}
}

// listParamDocs describes each parameter that ListParameters gives for c.
func listParamDocs(c *runmerge.Collection) []any {
	var out []any
	for _, name := range ListParameters(c) {
		out = append(out, listParamDoc(c, name))
	}
	return out
}

func listParamDoc(c *runmerge.Collection, name string) obj {
	if coll, ok := linkParams[name]; ok {
		kind := coll
		if lc, ok := runmerge.CollectionByName(coll); ok {
			kind = lc.Kind
		}
		return queryParam(name, "Only records linked to this "+kind+", from either side "+
			"(relationships or sessions.eventId).", obj{"type": "string", "minLength": 1})
	}
	switch name {
	case "tenantId":
		return tenantIDParam()
	case "cursor":
		return cursorParam()
	case "limit":
		return limitParam()
	case "sourceId", "remoteId":
		return queryParam(name, "Only records with this "+name+".", obj{"type": "string", "minLength": 1})
	case "updatedAfter":
		return queryParam(name, "Only records changed at or after this time; with cursor, "+
			"a sync client misses nothing.", obj{"type": "string", "format": "date-time"})
	case "sourceRawData":
		return boolParam(name, "Include each record's sourceRawData.")
	case "includeDeleted":
		return boolParam(name, `Include tombstones, as {"id","tenantId","deleted":true,`+
			`"deletedAt","updatedAt"}. Filters other than updatedAfter match no tombstone.`)
	case "q":
		return queryParam(name, "Full-text search over names and e-mail: records holding "+
			"every word, each as a prefix.", obj{"type": "string", "minLength": 1, "maxLength": 200})
	}
	if f, ok := c.Field(name); ok && f.Filterable {
		s := fieldSchema(f)
		s["minLength"] = 1
		return queryParam(name, "Only records whose "+name+" is this.", s)
	}
	return queryParam(name, undescribedExtension, obj{})
}

func securitySchemes() obj {
	return obj{
		"apiKey": obj{"type": "apiKey", "in": "header", "name": "x-api-key",
			"description": "An API key (rmk_...) or the operator's root key."},
		"bearer": obj{"type": "http", "scheme": "bearer",
			"description": "The same key as a bearer token."},
	}
}

// schemas returns the component schemas: the problem body, tenants, and
// for each collection its record, create, patch, page and bulk shapes.
func schemas() obj {
	time := obj{"type": "string", "format": "date-time"}
	s := obj{
		"Problem": obj{
			"type":     "object",
			"required": []any{"type", "title", "status", "detail", "code", "requestId"},
			"properties": obj{
				"type":      obj{"type": "string"},
				"title":     obj{"type": "string"},
				"status":    obj{"type": "integer", "minimum": 400, "maximum": 599},
				"detail":    obj{"type": "string"},
				"code":      obj{"type": "string", "enum": errorCodes()},
				"requestId": obj{"type": "string"},
				"errors": obj{"type": "array", "items": obj{
					"type":     "object",
					"required": []any{"pointer", "code", "detail"},
					"properties": obj{
						"pointer": obj{"type": "string", "description": "A JSON pointer into " +
							"the body, such as /records/3/email, or the name of a query parameter."},
						"code":   obj{"type": "string"},
						"detail": obj{"type": "string"},
					},
					"additionalProperties": false,
				}},
			},
			"additionalProperties": false,
		},
		"Tenant":          tenantSchema(false),
		"TenantWithStats": tenantSchema(true),
		"TenantCreate": obj{
			"type": "object",
			"properties": obj{
				"id":   obj{"type": "string", "pattern": tenantIDPattern},
				"name": obj{"type": "string", "minLength": 1, "maxLength": maxNameLen},
			},
			"additionalProperties": false,
		},
		"TenantUpdate": obj{
			"type": "object",
			"properties": obj{
				"name":   obj{"type": "string", "minLength": 1, "maxLength": maxNameLen},
				"status": obj{"enum": []any{runmerge.TenantActive, runmerge.TenantSuspended}},
			},
			"additionalProperties": false,
		},
		"Key":           keySchema(false),
		"KeyWithSecret": keySchema(true),
		"KeyCreate":     keyCreateSchema(),
		"Tombstone": obj{
			"type":        "object",
			"description": "A deleted record, as lists show it with includeDeleted=true.",
			"required":    []any{"id", "tenantId", "deleted", "deletedAt", "updatedAt"},
			"properties": obj{
				"id":        obj{"type": "string", "format": "uuid"},
				"tenantId":  obj{"type": "string"},
				"deleted":   obj{"const": true},
				"deletedAt": time,
				"updatedAt": time,
			},
			"additionalProperties": false,
		},
	}
	for k, v := range changeEventSchemas() {
		s[k] = v
	}
	for _, c := range runmerge.Collections() {
		name := schemaName(c)
		s[name] = recordSchema(c)
		s[name+"Create"] = createSchema(c)
		s[name+"Patch"] = patchSchema(c)
		s[name+"Page"] = pageSchema(obj{"oneOf": []any{ref(name), ref("Tombstone")}})
		s[name+"Bulk"] = obj{
			"type":     "object",
			"required": []any{"records"},
			"properties": obj{"records": obj{"type": "array", "minItems": 1,
				"maxItems": tenantstore.MaxBulk, "items": ref(name + "Create")}},
			"additionalProperties": false,
		}
		s[name+"BulkResult"] = obj{
			"type":                 "object",
			"required":             []any{"data"},
			"properties":           obj{"data": obj{"type": "array", "items": ref(name)}},
			"additionalProperties": false,
		}
	}
	return s
}

// tenantSchema is a tenant as the API shows it, with the stats of its file
// when withStats is set.
func tenantSchema(withStats bool) obj {
	time := obj{"type": "string", "format": "date-time"}
	props := obj{
		"id":        obj{"type": "string", "pattern": tenantIDPattern},
		"name":      obj{"type": "string"},
		"status":    obj{"enum": []any{runmerge.TenantActive, runmerge.TenantSuspended}},
		"createdAt": time,
		"updatedAt": time,
	}
	required := []any{"id", "name", "status", "createdAt", "updatedAt"}
	if withStats {
		props["stats"] = obj{
			"type":     "object",
			"required": []any{"fileSizeBytes", "records", "open"},
			"properties": obj{
				"fileSizeBytes": obj{"type": "integer", "minimum": 0},
				"records": obj{"type": "object", "description": "Live records per collection.",
					"additionalProperties": obj{"type": "integer", "minimum": 0}},
				"open": obj{"type": "boolean", "description": "Whether the file is open now."},
			},
			"additionalProperties": false,
		}
		required = append(required, "stats")
	}
	return obj{"type": "object", "required": required, "properties": props,
		"additionalProperties": false}
}

// errorCodes lists every code a problem body may carry.
func errorCodes() []any {
	codes := make([]string, 0, len(codeStatus))
	for c := range codeStatus {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	out := make([]any, len(codes))
	for i, c := range codes {
		out[i] = c
	}
	return out
}

func pageSchema(items obj) obj {
	return obj{
		"type":     "object",
		"required": []any{"data", "nextCursor"},
		"properties": obj{
			"data":       obj{"type": "array", "items": items},
			"nextCursor": obj{"type": []any{"string", "null"}},
		},
		"additionalProperties": false,
	}
}

// schemaName is the name of c's record schema: "Event" for events.
func schemaName(c *runmerge.Collection) string {
	return strings.ToUpper(c.Kind[:1]) + c.Kind[1:]
}

// recordSchema is a record of c as the API shows it.
func recordSchema(c *runmerge.Collection) obj {
	time := obj{"type": "string", "format": "date-time"}
	props := obj{
		"id":        obj{"type": "string", "format": "uuid", "readOnly": true},
		"tenantId":  obj{"type": "string", "readOnly": true},
		"createdAt": obj{"type": "string", "format": "date-time", "readOnly": true},
		"updatedAt": time,
		"version": obj{"type": "integer", "minimum": 1, "readOnly": true,
			"description": `Starts at 1, grows by one on each change; the ETag is "<version>".`},
	}
	required := []any{"id", "tenantId", "createdAt", "updatedAt", "version"}
	for _, f := range c.AllFields() {
		props[f.Name] = fieldSchema(&f)
		if f.Required {
			required = append(required, f.Name)
		}
	}
	props["sourceRawData"].(obj)["description"] = "Any JSON object; shown only when the " +
		"request says sourceRawData=true."
	return obj{"type": "object", "required": required, "properties": props,
		"additionalProperties": false}
}

// createSchema is a body that creates a record of c, or replaces one in a
// bulk upsert.
func createSchema(c *runmerge.Collection) obj {
	props := obj{}
	var required []any
	for _, f := range c.AllFields() {
		props[f.Name] = fieldSchema(&f)
		if f.Required {
			required = append(required, f.Name)
		}
	}
	s := obj{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	if len(c.Ranges) > 0 {
		var rules []string
		for _, r := range c.Ranges {
			rules = append(rules, r.End+" may not be before "+r.Start)
		}
		s["description"] = strings.Join(rules, "; ") + "."
	}
	return s
}

// patchSchema is a merge patch of a record of c: every member may be null,
// which removes it, and objects whose members are described are merged, so
// their members are optional and may be null too.
func patchSchema(c *runmerge.Collection) obj {
	props := obj{}
	for _, f := range c.AllFields() {
		props[f.Name] = patchField(&f)
	}
	return obj{"type": "object", "properties": props, "additionalProperties": false}
}

func patchField(f *runmerge.Field) obj {
	if f.Type == runmerge.TypeObject && f.Fields != nil {
		props := obj{}
		for i := range f.Fields {
			props[f.Fields[i].Name] = patchField(&f.Fields[i])
		}
		return obj{"type": []any{"object", "null"}, "properties": props,
			"additionalProperties": false}
	}
	return obj{"anyOf": []any{fieldSchema(f), obj{"type": "null"}}}
}

// fieldSchema is the JSON Schema of a value of f, from the same description
// that validation reads.
func fieldSchema(f *runmerge.Field) obj {
	s := obj{}
	switch f.Type {
	case runmerge.TypeString:
		s["type"] = "string"
		if f.Required {
			s["minLength"] = 1
		}
		s["maxLength"] = maxLength(f)
		if f.Enum != nil {
			enum := make([]any, len(f.Enum))
			for i, e := range f.Enum {
				enum[i] = e
			}
			s["enum"] = enum
		}
		switch f.Format {
		case runmerge.FormatEmail:
			s["format"] = "email"
		case runmerge.FormatURL:
			s["format"] = "uri"
			s["pattern"] = "^[hH][tT][tT][pP][sS]?://"
			s["description"] = "An absolute http or https URL."
		case runmerge.FormatTimeZone:
			s["description"] = "An IANA time zone name, such as Europe/Berlin."
		case runmerge.FormatCurrency:
			s["pattern"] = "^[A-Z]{3}$"
			s["description"] = "An ISO 4217 currency code, such as EUR."
		case runmerge.FormatDatetime:
			s["format"] = "date-time"
		}
	case runmerge.TypeInteger, runmerge.TypeNumber:
		s["type"] = string(f.Type)
		if f.Min != nil {
			s["minimum"] = *f.Min
		}
	case runmerge.TypeBoolean:
		s["type"] = "boolean"
	case runmerge.TypeDatetime:
		s["type"] = "string"
		s["format"] = "date-time"
		s["description"] = "RFC 3339; stored and shown in UTC with milliseconds."
	case runmerge.TypeObject:
		s["type"] = "object"
		if f.Fields != nil {
			props := obj{}
			var required []any
			for i := range f.Fields {
				props[f.Fields[i].Name] = fieldSchema(&f.Fields[i])
				if f.Fields[i].Required {
					required = append(required, f.Fields[i].Name)
				}
			}
			s["properties"] = props
			s["additionalProperties"] = false
			if len(required) > 0 {
				s["required"] = required
			}
		}
	case runmerge.TypeArray:
		s["type"] = "array"
		if f.Items != nil {
			s["items"] = fieldSchema(f.Items)
		}
	case runmerge.TypeAny:
		// Any JSON value.
	}
	if f.Default != nil {
		s["description"] = "Defaults to the time of creation."
	}
	return s
}

func maxLength(f *runmerge.Field) int {
	if f.MaxLength > 0 {
		return f.MaxLength
	}
	return runmerge.DefaultMaxLength
}
