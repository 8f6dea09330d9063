package runmerge

// The collections of event data.
const (
	CollectionEvents     = "events"
	CollectionPeople     = "people"
	CollectionSessions   = "sessions"
	CollectionExhibitors = "exhibitors"
	CollectionSponsors   = "sponsors"
	CollectionTickets    = "tickets"
	CollectionResources  = "resources"
)

// CollectionNames lists the collections in the order the API documents them.
var CollectionNames = []string{
	CollectionEvents,
	CollectionPeople,
	CollectionSessions,
	CollectionExhibitors,
	CollectionSponsors,
	CollectionTickets,
	CollectionResources,
}
