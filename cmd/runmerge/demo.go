package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// demoConference is the conference of one demo tenant.
type demoConference struct {
	tenant, organizer string // tenant id suffix and name
	name, category    string
	city, state       string
	country, zip      string
	street, venue     string
	timeZone          string
	currency          string
	price             float64
	domain            string // the organizer's web domain
}

var demoConferences = []demoConference{
	{"northwind", "Northwind Events", "Northwind DevCon 2026", "Software engineering",
		"Berlin", "Berlin", "DE", "10178", "Alexanderstraße 11", "Berlin Congress Center",
		"Europe/Berlin", "EUR", 590, "northwind-events.example"},
	{"globex", "Globex Conferences", "Globex Data & AI Summit", "Data and AI",
		"Austin", "TX", "US", "78701", "500 E Cesar Chavez St", "Austin Convention Center",
		"America/Chicago", "USD", 799, "globex-conferences.example"},
	{"initech", "Initech Expos", "Initech Cloud Expo Tokyo", "Cloud infrastructure",
		"Tokyo", "Tokyo", "JP", "135-0063", "3-11-1 Ariake, Koto-ku", "Tokyo Big Sight",
		"Asia/Tokyo", "JPY", 48000, "initech-expos.example"},
	{"umbrella", "Umbrella Health Forums", "Umbrella Digital Health Forum", "Health technology",
		"London", "Greater London", "GB", "E16 1XL", "1 Western Gateway", "ExCeL London",
		"Europe/London", "GBP", 450, "umbrella-forums.example"},
	{"hooli", "Hooli Live", "Hooli Product Week", "Product management",
		"San Francisco", "CA", "US", "94103", "747 Howard St", "Moscone Center",
		"America/Los_Angeles", "USD", 650, "hooli-live.example"},
}

var (
	demoFirstNames = []string{"Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Dennis",
		"Barbara", "Ken", "Frances", "Edsger", "Hedy", "Tim", "Radia", "Guido", "Sophie", "Yukihiro",
		"Anita", "Bjarne", "Lynn", "Donald", "Shafi", "Niklaus", "Jean", "Rob", "Leslie", "Fei-Fei",
		"Vint", "Adele", "John", "Mary", "Ravi", "Aiko", "Mateo", "Priya", "Lars", "Amara", "Chen"}
	demoLastNames = []string{"Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton",
		"Ritchie", "Liskov", "Thompson", "Allen", "Dijkstra", "Lamarr", "Berners-Lee", "Perlman",
		"van Rossum", "Wilson", "Matsumoto", "Borg", "Stroustrup", "Conway", "Knuth", "Goldwasser",
		"Wirth", "Bartik", "Pike", "Lamport", "Li", "Cerf", "Goldberg", "Backus", "Keller", "Shankar",
		"Tanaka", "García", "Iyer", "Nilsson", "Okafor", "Wang"}
	demoCompanies = []string{"Acme Corp", "Stark Industries", "Wayne Enterprises", "Cyberdyne",
		"Soylent", "Tyrell", "Wonka Industries", "Aperture Science", "Black Mesa", "Vandelay Industries",
		"Oscorp", "Massive Dynamic", "Pied Piper", "Dunder Mifflin", "Sterling Cooper", "Prestige Worldwide"}
	demoJobs = []string{"Software Engineer", "Engineering Manager", "Data Scientist", "CTO",
		"Product Manager", "Site Reliability Engineer", "Developer Advocate", "Solutions Architect",
		"Security Engineer", "VP Engineering", "Designer", "Founder"}
	demoIndustries = []string{"Software", "Finance", "Healthcare", "Retail", "Manufacturing",
		"Media", "Education", "Logistics"}
	demoTalks = []string{"Opening keynote: the next ten years", "Scaling writes without sharding",
		"What we learned running SQLite in production", "Zero-downtime schema migrations",
		"Observability that pays for itself", "A practical guide to multi-tenancy",
		"Designing APIs people enjoy", "Event-driven systems without regrets",
		"Security reviews that developers ask for", "From prototype to platform",
		"Testing in production, carefully", "Cost-aware architecture",
		"The human side of incident response", "Closing keynote: building for the long run",
		"Panel: open source sustainability", "Workshop: hands-on performance profiling"}
	demoTracks   = []string{"Main stage", "Architecture", "Operations", "Product"}
	demoRooms    = []string{"Hall A", "Room 1", "Room 2", "Room 3"}
	demoSponsors = []struct{ name, tier string }{{"Initrode", "Platinum"}, {"Globodyne", "Gold"},
		{"Hooli Cloud", "Gold"}, {"Nakatomi Trading", "Silver"}, {"Gringotts Bank", "Bronze"}}
	demoExhibitors = []struct{ name, industry, pitch string }{
		{"Cloudberry", "Cloud infrastructure", "Managed databases for every region."},
		{"Queuebert", "Developer tools", "Message queues that explain themselves."},
		{"Observatory", "Monitoring", "Traces, metrics and logs in one place."},
		{"Lockpick Security", "Security", "Penetration testing and code review."},
		{"Shipwright", "Developer tools", "Build pipelines that finish before your coffee."},
		{"Datahaven", "Data", "Warehouses without the waiting."},
		{"Pixel & Co", "Design", "Design systems for product teams."}}
)

func newDemoCommand(g *globalFlags) *cobra.Command {
	var tenants, attendees int
	var prefix, role, expiresIn string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Create demo tenants, each with a realistic conference, and a key to try them",
		Long: `Create a few demo tenants, each holding a conference as an event-technology
vendor's customer would have it: the event, its sessions, speakers,
organisers and attendees, exhibitors and their staff, sponsors, tickets and
resources, linked to each other. The data goes through the same validation
as the API. It then prints a new platform key, shown only once, and a few
requests to try with it.`,
		Example: `  runmerge demo
  runmerge demo --tenants 5 --attendees 300
  runmerge demo --prefix trial- --role read_only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tenants < 1 || tenants > len(demoConferences) {
				return fmt.Errorf("--tenants must be from 1 to %d, got %d", len(demoConferences), tenants)
			}
			if attendees < 0 || attendees > tenantstore.MaxBulk {
				return fmt.Errorf("--attendees must be from 0 to %d, got %d", tenantstore.MaxBulk, attendees)
			}
			if role != runmerge.RoleAdmin && role != runmerge.RoleReadOnly {
				return fmt.Errorf("--role must be admin or read_only, got %q", role)
			}
			expires, err := time.ParseDuration(expiresIn)
			if err != nil || expires <= 0 {
				return fmt.Errorf("--expires-in must be a positive duration such as 720h, got %q", expiresIn)
			}
			for _, c := range demoConferences[:tenants] {
				if id := prefix + c.tenant; !runmerge.ValidTenantID(id) {
					return fmt.Errorf("--prefix %q makes %q, which is not a tenant id", prefix, id)
				}
			}
			store, cfg, done, err := g.openStore(cmd)
			if err != nil {
				return err
			}
			err = runDemo(cmd, store, cfg, demoConferences[:tenants], prefix, attendees, role, expires)
			return closeWith(err, done)
		},
	}
	cmd.Flags().IntVar(&tenants, "tenants", 3,
		fmt.Sprintf("demo tenants to create (1 to %d)", len(demoConferences)))
	cmd.Flags().IntVar(&attendees, "attendees", 60, "attendees per conference")
	cmd.Flags().StringVar(&prefix, "prefix", "demo-", "prefix of the demo tenants' ids")
	cmd.Flags().StringVar(&role, "role", runmerge.RoleAdmin,
		"role of the printed platform key: admin or read_only")
	cmd.Flags().StringVar(&expiresIn, "expires-in", "720h", "lifetime of the printed key")
	return cmd
}

func runDemo(cmd *cobra.Command, store *tenantstore.Store, cfg *Config, confs []demoConference,
	prefix string, attendees int, role string, expires time.Duration) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	for _, c := range confs {
		if _, err := store.Catalog.Tenant(ctx, prefix+c.tenant); err == nil {
			return fmt.Errorf("tenant %q exists already; delete it (runmerge tenants delete %s --yes) "+
				"or choose another --prefix", prefix+c.tenant, prefix+c.tenant)
		}
	}
	fmt.Fprintf(out, "Created %d demo tenants:\n", len(confs))
	for i, c := range confs {
		id := prefix + c.tenant
		if _, err := store.CreateTenant(ctx, id, c.organizer); err != nil {
			return fmt.Errorf("create tenant %q: %w", id, plain(err))
		}
		d := &demoBuilder{conf: c, rng: rand.New(rand.NewPCG(uint64(i)+1, 2026))}
		counts, err := d.fill(ctx, store, id, attendees)
		if err != nil {
			return fmt.Errorf("fill tenant %q: %w", id, plain(err))
		}
		fmt.Fprintf(out, "  %-20s %s, %s: %s\n", id, c.name, c.city, counts)
	}

	secret := runmerge.NewKeySecret()
	at := runmerge.Now().Add(expires)
	k := &runmerge.Key{ID: uuid.Must(uuid.NewV7()).String(), Name: "demo", Role: role,
		Hash: runmerge.HashKeySecret(secret), CreatedAt: runmerge.Now(), ExpiresAt: &at}
	if err := store.Catalog.CreateKey(ctx, k); err != nil {
		return err
	}
	base := "http://" + cfg.Server.Addr
	first := prefix + confs[0].tenant
	fmt.Fprintf(out, `
Try them with this platform %s key. It is shown only this once and expires on %s:

    %s

With the server running (runmerge serve):

    export KEY=%s
    curl -H "x-api-key: $KEY" '%s/v1/tenants'
    curl -H "x-api-key: $KEY" '%s/v1/events?tenantId=%s'
    curl -H "x-api-key: $KEY" '%s/v1/people?tenantId=%s&type=Speaker'
    curl -H "x-api-key: $KEY" '%s/v1/sessions?tenantId=%s&q=keynote'
    curl -H "x-api-key: $KEY" -o %s.db '%s/v1/tenants/%s/export'
`, role, runmerge.FormatTime(at), secret, secret, base, base, first, base, first, base, first,
		first, base, first)
	return nil
}

// demoBuilder makes the records of one demo conference.
type demoBuilder struct {
	conf demoConference
	rng  *rand.Rand
	seq  int
	db   *tenantstore.DB
}

// demoCounts are how many records of each collection a demo tenant got.
type demoCounts map[string]int

func (c demoCounts) String() string {
	var parts []string
	for _, name := range runmerge.CollectionNames {
		parts = append(parts, fmt.Sprintf("%d %s", c[name], name))
	}
	return strings.Join(parts, ", ")
}

// fill writes the conference into tenant id through the record API, as a
// platform admin, so that every record is validated as the API would.
func (d *demoBuilder) fill(ctx context.Context, store *tenantstore.Store, id string, attendees int) (
	demoCounts, error) {
	l, err := store.Pool.Acquire(ctx, id)
	if err != nil {
		return nil, err
	}
	defer l.Release()
	d.db = l.DB()
	counts := demoCounts{}
	put := func(coll string, bodies []map[string]any) ([]string, error) {
		c, _ := runmerge.CollectionByName(coll)
		docs := make([]map[string]any, len(bodies))
		for i, b := range bodies {
			docs[i] = jsonDocument(b)
		}
		recs, err := d.db.BulkUpsert(ctx, &runmerge.Principal{Role: runmerge.RoleAdmin}, c, docs, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", coll, err)
		}
		ids := make([]string, len(recs))
		for i, r := range recs {
			ids[i] = r.ID
		}
		counts[coll] += len(ids)
		return ids, nil
	}

	loc, err := time.LoadLocation(d.conf.timeZone)
	if err != nil {
		return nil, err
	}
	now := time.Now().In(loc)
	day1 := time.Date(now.Year(), now.Month()+2, 10, 9, 0, 0, 0, loc)
	eventIDs, err := put("events", []map[string]any{d.event(day1)})
	if err != nil {
		return nil, err
	}
	event := eventIDs[0]

	sessions := d.sessions(day1, event)
	sessionIDs, err := put("sessions", sessions)
	if err != nil {
		return nil, err
	}
	speakerIDs, err := put("people", d.speakers(event, sessionIDs))
	if err != nil {
		return nil, err
	}
	if _, err := put("people", d.organizers(event)); err != nil {
		return nil, err
	}
	attendeeIDs, err := put("people", d.people("Attendee", attendees, event, nil))
	if err != nil {
		return nil, err
	}
	exhibitorIDs, err := put("exhibitors", d.exhibitors(event))
	if err != nil {
		return nil, err
	}
	if _, err := put("people", d.exhibitorStaff(event, exhibitorIDs)); err != nil {
		return nil, err
	}
	if _, err := put("sponsors", d.sponsors(event)); err != nil {
		return nil, err
	}
	if _, err := put("tickets", d.tickets(day1, event, attendeeIDs, speakerIDs)); err != nil {
		return nil, err
	}
	if _, err := put("resources", d.resources(event, sessions, sessionIDs)); err != nil {
		return nil, err
	}
	return counts, nil
}

// jsonDocument turns a body built in Go into what the API decodes from
// JSON: numbers as json.Number, arrays as []any.
func jsonDocument(body map[string]any) map[string]any {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		panic(err)
	}
	return doc
}

func (d *demoBuilder) pick(list []string) string { return list[d.rng.IntN(len(list))] }

// remote gives each record a source system id, as an integration would.
func (d *demoBuilder) remote(kind string) (string, string) {
	d.seq++
	return "demo-crm", fmt.Sprintf("%s-%04d", kind, d.seq)
}

func (d *demoBuilder) address() map[string]any {
	c := d.conf
	return map[string]any{"addressLine1": c.street, "city": c.city, "state": c.state,
		"zipCode": c.zip, "country": c.country}
}

func slug(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '&':
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
				b.WriteByte('-')
			}
		}
	}
	return strings.Trim(b.String(), "-")
}

func (d *demoBuilder) event(day1 time.Time) map[string]any {
	c := d.conf
	src, rid := d.remote("event")
	return map[string]any{
		"name": c.name,
		"description": fmt.Sprintf("Two days of talks, workshops and an expo floor on %s, in %s.",
			strings.ToLower(c.category), c.city),
		"startDate": day1.Format(time.RFC3339),
		"endDate":   day1.AddDate(0, 0, 1).Add(9 * time.Hour).Format(time.RFC3339),
		"timeZone":  c.timeZone,
		"location":  c.city + ", " + c.country,
		"venue":     []any{map[string]any{"name": c.venue, "address": d.address(), "capacity": 2500}},
		"category":  c.category,
		"capacity":  2000,
		"status":    "Upcoming",
		"socialMedia": []any{
			map[string]any{"platform": "mastodon", "url": "https://social." + c.domain + "/@" + c.tenant},
			map[string]any{"platform": "linkedin", "url": "https://www.linkedin.com/company/" + c.tenant},
		},
		"sourceId": src, "remoteId": rid,
		"sourceRawData": map[string]any{"crmStage": "published",
			"budgetCode": fmt.Sprintf("EV-%d", 1000+d.rng.IntN(9000))},
	}
}

func (d *demoBuilder) sessions(day1 time.Time, event string) []map[string]any {
	var out []map[string]any
	for i, title := range demoTalks {
		day := i / 8
		slot := i % 8 / len(demoTracks)
		track := i % len(demoTracks)
		offset := time.Duration(slot)*90*time.Minute + time.Duration(track)*15*time.Minute
		start := day1.AddDate(0, 0, day).Add(offset)
		length := 45 * time.Minute
		if strings.HasPrefix(title, "Workshop") {
			length = 90 * time.Minute
		}
		src, rid := d.remote("session")
		out = append(out, map[string]any{
			"name":        title,
			"description": "A session of " + d.conf.name + ".",
			"startDate":   start.Format(time.RFC3339),
			"endDate":     start.Add(length).Format(time.RFC3339),
			"eventId":     event,
			"location":    demoRooms[track],
			"timeZone":    d.conf.timeZone,
			"category":    demoTracks[track],
			"capacity":    []int{1200, 300, 250, 150}[track],
			"status":      "Upcoming",
			"sourceId":    src, "remoteId": rid,
		})
	}
	return out
}

// person makes a person of type typ, linked to the event and to links.
func (d *demoBuilder) person(typ, event string, links map[string][]string) map[string]any {
	first, last := d.pick(demoFirstNames), d.pick(demoLastNames)
	company := d.pick(demoCompanies)
	src, rid := d.remote("person")
	rel := map[string]any{"linkedEventIds": []string{event}}
	for k, v := range links {
		rel[k] = v
	}
	email := fmt.Sprintf("%s.%s.%d@%s.example", slug(first), slug(last), d.seq, slug(company))
	p := map[string]any{
		"firstName": first, "lastName": last, "email": email,
		"phone":    fmt.Sprintf("+1 555 %04d", d.rng.IntN(10000)),
		"status":   "Active",
		"type":     typ,
		"company":  company,
		"jobTitle": d.pick(demoJobs),
		"industry": d.pick(demoIndustries),
		"address":  map[string]any{"city": d.conf.city, "country": d.conf.country},
		"customFields": []any{map[string]any{"key": "dietary", "fieldName": "Dietary requirements",
			"fieldType":  "enum",
			"fieldValue": []string{"none", "vegetarian", "vegan", "gluten-free"}[d.rng.IntN(4)]}},
		"relationships": rel,
		"sourceId":      src, "remoteId": rid,
	}
	return p
}

func (d *demoBuilder) people(typ string, n int, event string, links map[string][]string) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = d.person(typ, event, links)
	}
	return out
}

func (d *demoBuilder) speakers(event string, sessions []string) []map[string]any {
	var out []map[string]any
	for i := 0; i < len(sessions); i += 2 {
		talks := sessions[i:min(i+2, len(sessions))]
		p := d.person("Speaker", event, map[string][]string{"linkedSessionIds": talks})
		p["socialMedia"] = []any{map[string]any{"platform": "github",
			"url":    "https://github.com/" + slug(p["lastName"].(string)),
			"userId": slug(p["lastName"].(string))}}
		out = append(out, p)
	}
	return out
}

func (d *demoBuilder) organizers(event string) []map[string]any {
	out := d.people("Organizer", 3, event, nil)
	for _, p := range out {
		p["company"] = d.conf.organizer
		p["department"] = "Events"
		p["team"] = []string{"Programme", "Logistics", "Partnerships"}[d.rng.IntN(3)]
	}
	return out
}

func (d *demoBuilder) exhibitors(event string) []map[string]any {
	var out []map[string]any
	for i, e := range demoExhibitors {
		src, rid := d.remote("exhibitor")
		host := slug(e.name) + ".example"
		out = append(out, map[string]any{
			"name": e.name, "description": e.pitch, "industry": e.industry,
			"website": "https://www." + host,
			"contactPeople": []any{map[string]any{"name": d.pick(demoFirstNames) + " " + d.pick(demoLastNames),
				"email": "booth@" + host, "phone": fmt.Sprintf("+44 20 7946 %04d", d.rng.IntN(10000)),
				"role": "Booth lead"}},
			"booths": []any{map[string]any{"boothId": fmt.Sprintf("B%02d", 10+i), "location": "Expo hall",
				"boothName": e.name, "capacity": 4 + d.rng.IntN(8)}},
			"socialMediaLinks": []any{map[string]any{"platform": "linkedin",
				"url": "https://www.linkedin.com/company/" + slug(e.name)}},
			"relationships": map[string]any{"linkedEventIds": []string{event}},
			"sourceId":      src, "remoteId": rid,
		})
	}
	return out
}

func (d *demoBuilder) exhibitorStaff(event string, exhibitors []string) []map[string]any {
	var out []map[string]any
	for i, ex := range exhibitors {
		p := d.person("Exhibitor", event, map[string][]string{"linkedExhibitorIds": {ex}})
		p["company"] = demoExhibitors[i].name
		out = append(out, p)
	}
	return out
}

func (d *demoBuilder) sponsors(event string) []map[string]any {
	var out []map[string]any
	for _, s := range demoSponsors {
		src, rid := d.remote("sponsor")
		host := slug(s.name) + ".example"
		out = append(out, map[string]any{
			"name": s.name, "tier": s.tier, "industry": d.pick(demoIndustries),
			"description": s.tier + " sponsor of " + d.conf.name + ".",
			"website":     "https://www." + host, "logoUrl": "https://www." + host + "/logo.svg",
			"contactPeople": []any{map[string]any{"name": d.pick(demoFirstNames) + " " + d.pick(demoLastNames),
				"email": "partners@" + host, "role": "Partnerships"}},
			"relationships": map[string]any{"linkedEventIds": []string{event}},
			"sourceId":      src, "remoteId": rid,
		})
	}
	return out
}

func (d *demoBuilder) tickets(day1 time.Time, event string, attendees, speakers []string) []map[string]any {
	var out []map[string]any
	ticket := func(person, typ string, price float64, access string) {
		src, rid := d.remote("ticket")
		status := "valid"
		if d.rng.IntN(10) == 0 {
			status = "refunded"
		}
		bought := day1.AddDate(0, 0, -20-d.rng.IntN(90))
		out = append(out, map[string]any{
			"ticketType": typ, "price": price, "currency": d.conf.currency, "status": status,
			"purchaseDate": bought.Format(time.RFC3339),
			"barcode":      fmt.Sprintf("RM%010d", d.rng.IntN(1e9)),
			"validFrom":    day1.Add(-2 * time.Hour).Format(time.RFC3339),
			"validUntil":   day1.AddDate(0, 0, 1).Add(10 * time.Hour).Format(time.RFC3339),
			"accessLevel":  access,
			"relationships": map[string]any{"linkedEventIds": []string{event},
				"linkedPersonIds": []string{person}},
			"sourceId": src, "remoteId": rid,
		})
	}
	for i, p := range attendees {
		if i%7 == 0 {
			ticket(p, "VIP pass", d.conf.price*2, "vip")
		} else {
			ticket(p, "Conference pass", d.conf.price, "general")
		}
	}
	for _, p := range speakers {
		ticket(p, "Speaker pass", 0, "speaker")
	}
	return out
}

func (d *demoBuilder) resources(event string, sessions []map[string]any, sessionIDs []string) []map[string]any {
	host := "https://files." + d.conf.domain
	src, rid := d.remote("resource")
	out := []map[string]any{{
		"name": "Venue map", "resourceType": "Document", "url": host + "/venue-map.pdf",
		"description": "Halls, rooms and the expo floor of " + d.conf.venue + ".",
		"fileType":    "application/pdf", "fileSize": 1_800_000, "accessLevel": "public",
		"relationships": map[string]any{"linkedEventIds": []string{event}},
		"sourceId":      src, "remoteId": rid,
	}}
	for i, s := range sessions {
		src, rid := d.remote("resource")
		typ, ext, mime := "Presentation", "pdf", "application/pdf"
		if i%5 == 0 {
			typ, ext, mime = "Video", "mp4", "video/mp4"
		}
		out = append(out, map[string]any{
			"name": "Slides: " + s["name"].(string), "resourceType": typ,
			"url":         fmt.Sprintf("%s/sessions/%s.%s", host, slug(s["name"].(string)), ext),
			"description": "Material of the session " + s["name"].(string) + ".",
			"fileType":    mime, "fileSize": 200_000 + d.rng.IntN(5_000_000), "accessLevel": "attendees",
			"relationships": map[string]any{"linkedEventIds": []string{event},
				"linkedSessionIds": []string{sessionIDs[i]}},
			"sourceId": src, "remoteId": rid,
		})
	}
	return out
}
