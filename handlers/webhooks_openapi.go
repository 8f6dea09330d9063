package handlers

import (
	"github.com/runmerge/runmerge/tenantstore"
	"github.com/runmerge/runmerge/webhook"
)

// changeEventOperations describes the webhook and stream routes for the
// OpenAPI document.
func changeEventOperations() map[string]obj {
	hook := ref("Webhook")
	tags := []any{"webhooks"}
	return map[string]obj{
		"POST /v1/webhooks": {
			"summary": "Create a webhook",
			"description": "Subscribes a URL to change events. The answer's secret (whsec_...) " +
				"signs every delivery and is shown only here. Tenant admins subscribe to their " +
				"own tenant; a platform admin may leave out tenantId to hear every tenant. " +
				"The URL must be http or https and, unless the operator allows private " +
				"addresses, resolve to public addresses only.",
			"tags":        tags,
			"requestBody": jsonBody(ref("WebhookCreate")),
			"responses": withErrors(obj{
				"201": jsonResponse("The webhook, with its secret.", ref("WebhookWithSecret"),
					locationHeader()),
			}, 400, 403, 404, 413, 415, 422),
		},
		"GET /v1/webhooks": {
			"summary":     "List webhooks",
			"description": "The webhooks the caller may see, in order of id, without secrets.",
			"tags":        tags,
			"parameters": []any{queryParam("tenantId", "Only this tenant's webhooks; a tenant "+
				"key may name only its own.", obj{"type": "string", "pattern": tenantIDPattern}),
				cursorParam(), limitParam()},
			"responses": withErrors(obj{"200": jsonResponse("A page of webhooks.", pageSchema(hook))},
				400, 403, 404),
		},
		"GET /v1/webhooks/:id": {
			"summary":     "Get a webhook",
			"description": "One webhook, without its secret.",
			"tags":        tags,
			"responses":   withErrors(obj{"200": jsonResponse("The webhook.", hook)}, 400, 403, 404),
		},
		"PATCH /v1/webhooks/:id": {
			"summary": "Change a webhook",
			"description": "Changes url, eventTypes, description, or status: disabled stops " +
				"deliveries, active starts them again (a receiver answering 410 disables it).",
			"tags":        tags,
			"requestBody": jsonBody(ref("WebhookUpdate")),
			"responses": withErrors(obj{"200": jsonResponse("The webhook.", hook)},
				400, 403, 404, 413, 415, 422),
		},
		"DELETE /v1/webhooks/:id": {
			"summary":     "Delete a webhook",
			"description": "Deletes the webhook and its delivery log.",
			"tags":        tags,
			"responses":   withErrors(obj{"204": obj{"description": "Deleted."}}, 400, 403, 404),
		},
		"GET /v1/webhooks/:id/deliveries": {
			"summary": "List a webhook's deliveries",
			"description": "The delivery log, newest first: each change event sent or to be " +
				"sent, with its attempts, the last answer's status and the last error. The " +
				"receiver's answer body is never kept.",
			"tags":       tags,
			"parameters": []any{cursorParam(), limitParam()},
			"responses": withErrors(obj{
				"200": jsonResponse("A page of deliveries.", pageSchema(ref("Delivery"))),
			}, 400, 403, 404),
		},
		"POST /v1/webhooks/:id/deliveries/:deliveryId/retry": {
			"summary": "Send a delivery again",
			"description": "Sends the delivery again as soon as a worker is free, whatever its " +
				"status, with the same webhook-id. 409 while it is being sent, or while the " +
				"webhook is disabled.",
			"tags": tags,
			"responses": withErrors(obj{
				"202": jsonResponse("The delivery, due now.", ref("Delivery")),
			}, 400, 403, 404, 409),
		},
		"GET /v1/stream": {
			"summary": "Stream change events",
			"description": "Server-sent events, one per change event the key may read: id is " +
				"the event's position, event its type, data the change event JSON. Send " +
				"Last-Event-ID to resume after a position; without it the stream starts now. " +
				"A comment line keeps the connection alive every 15 seconds. A key may hold " +
				"a few streams open at once (429 beyond).",
			"tags": []any{"stream"},
			"parameters": []any{
				queryParam("tenantId", "Only this tenant's events; a tenant key may name only "+
					"its own. Platform keys without it hear every tenant.",
					obj{"type": "string", "pattern": tenantIDPattern}),
				queryParam("eventTypes", "Comma-separated event types, such as "+
					"person.created,person.updated; * or absent for all.", obj{"type": "string"}),
				obj{"name": "Last-Event-ID", "in": "header", "description": "The id of the " +
					"last event received; the stream resumes after it.",
					"schema": obj{"type": "string", "pattern": "^[0-9]+$"}},
			},
			"responses": withErrors(obj{
				"200": obj{
					"description": "The stream, until the client leaves or the server shuts down.",
					"headers":     obj{"X-Request-Id": requestIDHeader()},
					"content": obj{"text/event-stream": obj{"schema": obj{"type": "string",
						"description": "Each message carries a ChangeEvent as its data."}}},
				},
			}, 400, 403, 404),
		},
	}
}

// changeEventSchemas returns the component schemas of webhooks, deliveries
// and change events.
func changeEventSchemas() obj {
	time := obj{"type": "string", "format": "date-time"}
	nullTime := obj{"type": []any{"string", "null"}, "format": "date-time"}
	types := []any{webhook.WildcardEventType}
	for _, t := range webhook.EventTypes() {
		types = append(types, t)
	}
	eventTypes := obj{"type": "array", "minItems": 1, "items": obj{"enum": types}}
	url := obj{"type": "string", "format": "uri", "maxLength": 2048}
	description := obj{"type": "string", "maxLength": maxDescriptionLen}
	webhookSchema := func(withSecret bool) obj {
		props := obj{
			"id":             obj{"type": "string"},
			"tenantId":       obj{"type": []any{"string", "null"}, "description": "null: every tenant"},
			"url":            url,
			"eventTypes":     eventTypes,
			"description":    obj{"type": "string"},
			"status":         obj{"enum": []any{tenantstore.WebhookActive, tenantstore.WebhookDisabled}},
			"disabledReason": obj{"type": []any{"string", "null"}},
			"createdAt":      time,
			"updatedAt":      time,
		}
		required := []any{"id", "tenantId", "url", "eventTypes", "description", "status",
			"disabledReason", "createdAt", "updatedAt"}
		if withSecret {
			props["secret"] = obj{"type": "string", "pattern": "^whsec_",
				"description": "Signs every delivery; shown only in this answer."}
			required = append(required, "secret")
		}
		return obj{"type": "object", "required": required, "properties": props,
			"additionalProperties": false}
	}
	return obj{
		"Webhook":           webhookSchema(false),
		"WebhookWithSecret": webhookSchema(true),
		"WebhookCreate": obj{
			"type":     "object",
			"required": []any{"url", "eventTypes"},
			"properties": obj{
				"url": url, "eventTypes": eventTypes, "description": description,
				"tenantId": obj{"type": "string", "pattern": tenantIDPattern},
			},
			"additionalProperties": false,
		},
		"WebhookUpdate": obj{
			"type": "object",
			"properties": obj{
				"url": url, "eventTypes": eventTypes, "description": description,
				"status": obj{"enum": []any{tenantstore.WebhookActive, tenantstore.WebhookDisabled}},
			},
			"additionalProperties": false,
		},
		"Delivery": obj{
			"type": "object",
			"required": []any{"id", "webhookId", "tenantId", "changeId", "eventType", "status",
				"attempts", "lastAttemptAt", "nextAttemptAt", "responseStatus", "error", "createdAt"},
			"properties": obj{
				"id":        obj{"type": "string", "description": "Also the webhook-id header."},
				"webhookId": obj{"type": "string"},
				"tenantId":  obj{"type": "string"},
				"changeId":  obj{"type": "string"},
				"eventType": obj{"type": "string"},
				"status": obj{"enum": []any{tenantstore.DeliveryPending, tenantstore.DeliverySucceeded,
					tenantstore.DeliveryFailed}},
				"attempts":       obj{"type": "integer", "minimum": 0},
				"lastAttemptAt":  nullTime,
				"nextAttemptAt":  nullTime,
				"responseStatus": obj{"type": []any{"integer", "null"}},
				"error":          obj{"type": []any{"string", "null"}},
				"createdAt":      time,
			},
			"additionalProperties": false,
		},
		"ChangeEvent": obj{
			"type":        "object",
			"description": "What a webhook delivery's body and a stream message's data carry.",
			"required":    []any{"id", "eventType", "tenantId", "timestamp", "data"},
			"properties": obj{
				"id":        obj{"type": "string"},
				"eventType": obj{"type": "string"},
				"tenantId":  obj{"type": "string"},
				"timestamp": time,
				"data":      obj{"type": "object", "description": "The record, or the tenant, after the change."},
			},
		},
	}
}
