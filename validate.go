package runmerge

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // time zone names check the same on a host without zoneinfo files
	"unicode/utf8"
)

// CheckBody refuses a request body that names fields a client may not set:
// server-set fields at the top level (code EREADONLYFIELD) and fields that do
// not exist, at the top level or inside objects whose members are described,
// such as address or the items of customFields (code EUNKNOWNFIELD). It
// reports every such field; the error's code is EREADONLYFIELD when any
// server-set field was named, else EUNKNOWNFIELD. Pointers start with prefix,
// a JSON pointer such as "" or "/records/3". Values of the wrong type are left
// to Validate.
func (c *Collection) CheckBody(body map[string]any, prefix string) error {
	var errs []FieldError
	readOnly := false
	for _, name := range sortedKeys(body) {
		pointer := prefix + "/" + escapePointer(name)
		if IsServerField(name) {
			readOnly = true
			errs = append(errs, FieldError{Pointer: pointer, Code: EREADONLYFIELD,
				Detail: name + " is set by the server"})
			continue
		}
		f, ok := c.Field(name)
		if !ok {
			errs = append(errs, unknownField(name, pointer))
			continue
		}
		errs = checkMembers(errs, f, body[name], pointer)
	}
	if len(errs) == 0 {
		return nil
	}
	SortFieldErrors(errs)
	if readOnly {
		return &Error{Code: EREADONLYFIELD, Message: "the body names fields the server sets",
			Fields: errs}
	}
	return &Error{Code: EUNKNOWNFIELD, Message: "the body names fields that do not exist",
		Fields: errs}
}

// checkMembers appends an error for each member of value, at any depth, that
// f does not describe.
func checkMembers(errs []FieldError, f *Field, value any, pointer string) []FieldError {
	switch v := value.(type) {
	case map[string]any:
		if f.Type != TypeObject || f.Fields == nil {
			return errs
		}
		for _, name := range sortedKeys(v) {
			p := pointer + "/" + escapePointer(name)
			m, ok := member(f.Fields, name)
			if !ok {
				errs = append(errs, unknownField(name, p))
				continue
			}
			errs = checkMembers(errs, m, v[name], p)
		}
	case []any:
		if f.Type != TypeArray || f.Items == nil {
			return errs
		}
		for i, item := range v {
			errs = checkMembers(errs, f.Items, item, pointer+"/"+strconv.Itoa(i))
		}
	}
	return errs
}

func unknownField(name, pointer string) FieldError {
	return FieldError{Pointer: pointer, Code: EUNKNOWNFIELD, Detail: name + " is not a field here"}
}

// member returns the field called name among fields.
func member(fields []Field, name string) (*Field, bool) {
	for i := range fields {
		if fields[i].Name == name {
			return &fields[i], true
		}
	}
	return nil, false
}

// Codes of field errors in validation errors.
const (
	CodeRequired      = "required"       // a required field is absent, null or empty
	CodeInvalidType   = "invalid_type"   // a value of the wrong JSON type
	CodeInvalidEnum   = "invalid_enum"   // a string that is not one of the allowed values
	CodeInvalidFormat = "invalid_format" // a string that is not in the field's format
	CodeOutOfRange    = "out_of_range"   // a number below the minimum or too large
	CodeInvalidRange  = "invalid_range"  // an end before its start
	CodeTooLong       = "too_long"       // a string over the field's length
)

// Validate checks a whole record of collection c, such as a create body after
// ApplyDefaults or a stored record after a merge patch. It reports every
// problem at once, as one *Error with code EINVALID whose field errors are in
// pointer order; pointers start with prefix, as in CheckBody. A null value
// counts as absent. Members that are not fields are left to CheckBody.
//
// doc holds values as encoding/json decodes them, with numbers as json.Number
// (Decoder.UseNumber) or float64.
func (c *Collection) Validate(doc map[string]any, prefix string) error {
	v := &validator{}
	v.object(c.Fields, doc, prefix)
	v.object(commonFields, doc, prefix)
	for _, r := range c.Ranges {
		v.dateRange(doc, r, prefix)
	}
	v.customFields(doc["customFields"], prefix+"/customFields")
	if len(v.errs) == 0 {
		return nil
	}
	SortFieldErrors(v.errs)
	return &Error{Code: EINVALID, Message: fmt.Sprintf("the %s is not valid", c.Kind),
		Fields: v.errs}
}

// ApplyDefaults sets the default of each field of c that doc lacks or holds
// as null, such as a resource's uploadDate. It is called on create only.
func (c *Collection) ApplyDefaults(doc map[string]any) {
	for i := range c.Fields {
		f := &c.Fields[i]
		if f.Default != nil && doc[f.Name] == nil {
			doc[f.Name] = f.Default()
		}
	}
}

// validator collects the field errors of one document.
type validator struct {
	errs []FieldError
}

func (v *validator) add(pointer, code, detail string) {
	v.errs = append(v.errs, FieldError{Pointer: pointer, Code: code, Detail: detail})
}

// object checks the members of obj that fields describe.
func (v *validator) object(fields []Field, obj map[string]any, pointer string) {
	for i := range fields {
		f := &fields[i]
		p := pointer + "/" + escapePointer(f.Name)
		value := obj[f.Name]
		if value == nil {
			if f.Required {
				v.add(p, CodeRequired, f.Name+" is required")
			}
			continue
		}
		v.value(f, value, p)
	}
}

// value checks one value, not nil, against f.
func (v *validator) value(f *Field, value any, pointer string) {
	switch f.Type {
	case TypeString:
		v.string(f, value, pointer)
	case TypeInteger, TypeNumber:
		v.number(f, value, pointer)
	case TypeBoolean:
		if _, ok := value.(bool); !ok {
			v.add(pointer, CodeInvalidType, "must be true or false")
		}
	case TypeDatetime:
		s, ok := value.(string)
		if !ok {
			v.add(pointer, CodeInvalidType, "must be a string")
		} else if _, ok := parseDatetime(s); !ok {
			v.add(pointer, CodeInvalidFormat, datetimeDetail)
		}
	case TypeObject:
		obj, ok := value.(map[string]any)
		if !ok {
			v.add(pointer, CodeInvalidType, "must be an object")
		} else if f.Fields != nil {
			v.object(f.Fields, obj, pointer)
		}
	case TypeArray:
		v.array(f, value, pointer)
	}
}

func (v *validator) string(f *Field, value any, pointer string) {
	s, ok := value.(string)
	if !ok {
		v.add(pointer, CodeInvalidType, "must be a string")
		return
	}
	if f.Required && strings.TrimSpace(s) == "" {
		v.add(pointer, CodeRequired, "must not be empty")
		return
	}
	if n := f.maxLength(); utf8.RuneCountInString(s) > n {
		v.add(pointer, CodeTooLong, fmt.Sprintf("must be at most %d characters", n))
		return
	}
	if f.Enum != nil && !slices.Contains(f.Enum, s) {
		v.add(pointer, CodeInvalidEnum, "must be one of "+strings.Join(f.Enum, ", "))
		return
	}
	if f.Format != "" && !validFormat(f.Format, s) {
		v.add(pointer, CodeInvalidFormat, formatDetails[f.Format])
	}
}

func (v *validator) number(f *Field, value any, pointer string) {
	n, err := numberValue(value, f.Type == TypeInteger)
	switch {
	case errors.Is(err, errNotNumber):
		v.add(pointer, CodeInvalidType, "must be a number")
	case errors.Is(err, errNotInteger):
		v.add(pointer, CodeInvalidType, "must be an integer")
	case errors.Is(err, errTooLarge):
		v.add(pointer, CodeOutOfRange, "is too large")
	case f.Min != nil && n < *f.Min:
		v.add(pointer, CodeOutOfRange, "must be at least "+strconv.FormatFloat(*f.Min, 'f', -1, 64))
	}
}

func (v *validator) array(f *Field, value any, pointer string) {
	items, ok := value.([]any)
	if !ok {
		v.add(pointer, CodeInvalidType, "must be an array")
		return
	}
	if f.Items == nil {
		return
	}
	for i, item := range items {
		p := pointer + "/" + strconv.Itoa(i)
		if item == nil {
			v.add(p, CodeInvalidType, "must not be null")
			continue
		}
		v.value(f.Items, item, p)
	}
}

// dateRange checks that r.End is not before r.Start, when both are valid.
func (v *validator) dateRange(doc map[string]any, r Range, prefix string) {
	start, ok1 := doc[r.Start].(string)
	end, ok2 := doc[r.End].(string)
	if !ok1 || !ok2 {
		return
	}
	st, ok1 := parseDatetime(start)
	et, ok2 := parseDatetime(end)
	if ok1 && ok2 && et.Before(st) {
		v.add(prefix+"/"+escapePointer(r.End), CodeInvalidRange, "must not be before "+r.Start)
	}
}

// customFields checks that each custom field's value is of its fieldType.
// The shape of the items has been checked already.
func (v *validator) customFields(value any, pointer string) {
	items, _ := value.([]any)
	for i, item := range items {
		cf, _ := item.(map[string]any)
		typ, _ := cf["fieldType"].(string)
		fv := cf["fieldValue"]
		if fv == nil {
			continue
		}
		p := pointer + "/" + strconv.Itoa(i) + "/fieldValue"
		if s, ok := fv.(string); ok && utf8.RuneCountInString(s) > customValueLength {
			v.add(p, CodeTooLong, fmt.Sprintf("must be at most %d characters", customValueLength))
			continue
		}
		v.customValue(typ, fv, p)
	}
}

func (v *validator) customValue(typ string, fv any, pointer string) {
	switch typ {
	case "string":
		if _, ok := fv.(string); !ok {
			v.add(pointer, CodeInvalidType, "must be a string, as fieldType says")
		}
	case "number":
		if _, err := numberValue(fv, false); errors.Is(err, errNotNumber) {
			v.add(pointer, CodeInvalidType, "must be a number, as fieldType says")
		} else if err != nil {
			v.add(pointer, CodeOutOfRange, "is too large")
		}
	case "boolean":
		if _, ok := fv.(bool); !ok {
			v.add(pointer, CodeInvalidType, "must be true or false, as fieldType says")
		}
	case "date":
		s, ok := fv.(string)
		if !ok {
			v.add(pointer, CodeInvalidType, "must be a string, as fieldType says")
		} else if !validDate(s) {
			v.add(pointer, CodeInvalidFormat,
				"must be an RFC 3339 date such as 2026-05-01 or date-time such as "+
					"2026-05-01T09:00:00Z")
		}
	case "enum":
		if !isStringOrStrings(fv) {
			v.add(pointer, CodeInvalidType,
				"must be a string or an array of strings, as fieldType says")
		}
	case "object":
		if _, ok := fv.(map[string]any); !ok {
			v.add(pointer, CodeInvalidType, "must be an object, as fieldType says")
		}
	}
}

func isStringOrStrings(value any) bool {
	switch v := value.(type) {
	case string:
		return true
	case []any:
		for _, item := range v {
			if _, ok := item.(string); !ok {
				return false
			}
		}
		return true
	}
	return false
}

// Reasons numberValue refuses a value.
var (
	errNotNumber  = errors.New("not a number")
	errNotInteger = errors.New("not an integer")
	errTooLarge   = errors.New("too large")
)

// numberValue returns the numeric value of a decoded JSON number. With
// integer set, it refuses numbers with a fractional part and integers
// outside the range of int64.
func numberValue(value any, integer bool) (float64, error) {
	var f float64
	switch n := value.(type) {
	case json.Number:
		if integer {
			if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
				return float64(i), nil
			} else if errors.Is(err, strconv.ErrRange) {
				return 0, errTooLarge
			}
		}
		var err error
		f, err = strconv.ParseFloat(string(n), 64)
		if errors.Is(err, strconv.ErrRange) && !math.IsInf(f, 0) {
			f, err = 0, nil // underflow: a tiny number is close enough to zero
		}
		if errors.Is(err, strconv.ErrRange) {
			return 0, errTooLarge
		} else if err != nil {
			return 0, errNotNumber
		}
	case float64:
		f = n
	case float32:
		f = float64(n)
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	default:
		return 0, errNotNumber
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errTooLarge
	}
	if integer {
		if f != math.Trunc(f) {
			return 0, errNotInteger
		}
		if f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, errTooLarge
		}
	}
	return f, nil
}

const datetimeDetail = "must be an RFC 3339 date-time such as 2026-05-01T09:00:00Z"

// formatDetails say what each format requires, in field errors.
var formatDetails = map[string]string{
	FormatEmail:    "must be an e-mail address such as ada@example.com",
	FormatURL:      "must be an absolute http or https URL",
	FormatTimeZone: "must be an IANA time zone name such as Europe/Berlin",
	FormatCurrency: "must be an ISO 4217 currency code such as EUR",
	FormatDatetime: datetimeDetail,
}

// validFormat reports whether s is in format.
func validFormat(format, s string) bool {
	switch format {
	case FormatEmail:
		return validEmail(s)
	case FormatURL:
		return validURL(s)
	case FormatTimeZone:
		return validTimeZone(s)
	case FormatCurrency:
		return validCurrency(s)
	case FormatDatetime:
		_, ok := parseDatetime(s)
		return ok
	}
	return true
}

// parseDatetime parses an RFC 3339 date-time, such as 2026-05-01T09:00:00Z or
// 2026-05-01T11:00:00.250+02:00.
func parseDatetime(s string) (time.Time, bool) {
	// time.Parse takes a few forms RFC 3339 does not: a one-digit hour, a
	// comma before the fraction, an offset of 24 hours or more.
	if len(s) < len("2006-01-02T15:04:05Z") || len(s) > 64 || s[10] != 'T' ||
		s[13] != ':' || s[16] != ':' || strings.IndexByte(s, ',') >= 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	if _, offset := t.Zone(); offset <= -24*3600 || offset >= 24*3600 {
		return time.Time{}, false
	}
	// The server writes times in UTC, which must be a four-digit year too.
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

// validDate reports whether s is an RFC 3339 full-date or date-time.
func validDate(s string) bool {
	if len(s) == len("2006-01-02") {
		_, err := time.Parse(time.DateOnly, s)
		return err == nil
	}
	_, ok := parseDatetime(s)
	return ok
}

// validEmail reports whether s is a bare e-mail address, such as
// ada@example.com, whose domain is a dotted host name.
func validEmail(s string) bool {
	if len(s) > emailLength {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	domain := s[strings.LastIndexByte(s, '@')+1:]
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !validLabel(l) {
			return false
		}
	}
	return true
}

// validLabel reports whether l is a label of a host name: letters, digits and
// inner hyphens. Letters beyond ASCII are allowed for internationalized names.
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
		case r > 0x7f:
		default:
			return false
		}
	}
	return true
}

// validURL reports whether s is an absolute http or https URL with a host.
func validURL(s string) bool {
	if len(s) > urlLength || strings.ContainsAny(s, " \t\r\n\\") {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Hostname() == "" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme == "http" || scheme == "https"
}

// timeZones caches the names validTimeZone accepted. It holds only real
// zone names, so it stays small whatever clients send.
var timeZones sync.Map

// validTimeZone reports whether s names an IANA time zone, such as
// Europe/Berlin or UTC. "Local", the server's own zone, is not one.
func validTimeZone(s string) bool {
	if s == "" || s == "Local" || len(s) > 64 {
		return false
	}
	if _, ok := timeZones.Load(s); ok {
		return true
	}
	if _, err := time.LoadLocation(s); err != nil {
		return false
	}
	timeZones.Store(s, true)
	return true
}

// validCurrency reports whether s is an ISO 4217 currency code.
func validCurrency(s string) bool {
	return len(s) == 3 && currencies()[s]
}

// currencyCodes are the ISO 4217 codes in use: national currencies, fund
// codes, supranational units and precious metals. The testing code XTS and
// XXX, "no currency", are left out, since neither can price a ticket.
const currencyCodes = `
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV
BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK
DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL
HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU
XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG
`

var currencies = sync.OnceValue(func() map[string]bool {
	set := make(map[string]bool)
	for _, code := range strings.Fields(currencyCodes) {
		set[code] = true
	}
	return set
})

// SortFieldErrors sorts errs by pointer, comparing array indexes as numbers
// so that /venue/2 comes before /venue/10. Errors at one pointer keep their
// order.
func SortFieldErrors(errs []FieldError) {
	slices.SortStableFunc(errs, func(a, b FieldError) int {
		return comparePointers(a.Pointer, b.Pointer)
	})
}

func comparePointers(a, b string) int {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] == bs[i] {
			continue
		}
		ai, aerr := strconv.Atoi(as[i])
		bi, berr := strconv.Atoi(bs[i])
		if aerr == nil && berr == nil && ai != bi {
			return cmp.Compare(ai, bi)
		}
		return strings.Compare(as[i], bs[i])
	}
	return len(as) - len(bs)
}

// escapePointer escapes name as one reference token of a JSON pointer.
func escapePointer(name string) string {
	if !strings.ContainsAny(name, "~/") {
		return name
	}
	return strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
