package runmerge

// MergePatch applies patch to doc as a JSON merge patch (RFC 7396) and
// returns the result, a new document that shares nothing with doc or patch:
// a member set to null is removed, an object is merged member by member, and
// any other value, arrays included, replaces what was there. doc may be nil;
// MergePatch(nil, body) is body without its null members.
func MergePatch(doc, patch map[string]any) map[string]any {
	out := cloneObject(doc)
	mergeInto(out, patch)
	return out
}

// mergeInto applies patch to target, which the caller owns.
func mergeInto(target, patch map[string]any) {
	for name, value := range patch {
		switch v := value.(type) {
		case nil:
			delete(target, name)
		case map[string]any:
			// target's members are copies already, so merging into one in
			// place leaves the original document alone.
			t, ok := target[name].(map[string]any)
			if !ok {
				t = make(map[string]any, len(v))
			}
			mergeInto(t, v)
			target[name] = t
		default:
			target[name] = cloneValue(value)
		}
	}
}

func cloneObject(obj map[string]any) map[string]any {
	out := make(map[string]any, len(obj))
	for name, value := range obj {
		out[name] = cloneValue(value)
	}
	return out
}

func cloneValue(value any) any {
	switch v := value.(type) {
	case map[string]any:
		return cloneObject(v)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = cloneValue(item)
		}
		return out
	}
	return value
}
