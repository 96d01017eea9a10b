/// What the policy knows of numbering: how dialled digits become E.164, which country code a number
/// has, the North American Numbering Plan's members, and the ranges that cost the caller (premium rate,
/// shared cost, satellite). Pure tables; ``DestinationRules`` chooses what is home.
public enum NumberingPlan {
    /// A range denied unless an account's allow pattern names it (``DialPattern/covers(_:)``).
    public struct DeniedRange: Equatable, Sendable {
        public let prefix: String
        public let rule: PolicyRule
        public let name: String
        /// `prefix` read once, not at every check.
        let pattern: DialPattern

        public init(_ prefix: String, _ rule: PolicyRule, _ name: String) {
            self.prefix = prefix
            self.rule = rule
            self.name = name
            pattern = DialPattern(prefix)
        }
    }

    /// Premium-rate, shared-cost and satellite ranges, as E.164 prefixes (`x`: any digit), plus short
    /// codes (no `+`) matched against short numbers. Not exhaustive: with the home country's other rules
    /// (`international`, `nanp_foreign`) it covers what IRSF and premium-rate pumping use most.
    public static let deniedRanges: [DeniedRange] = [
        DeniedRange("+870", .satellite, "Inmarsat"),
        DeniedRange("+881", .satellite, "Global Mobile Satellite System"),
        DeniedRange("+882", .satellite, "International Networks"),
        DeniedRange("+883", .satellite, "International Networks"),
        DeniedRange("+979", .premiumRate, "International Premium Rate Service"),
        DeniedRange("+808", .sharedCost, "International Shared Cost Service"),
        DeniedRange("+1900", .premiumRate, "NANP 900 premium rate"),
        DeniedRange("+1976", .premiumRate, "NANP 976 premium rate"),
        // 976 was the premium exchange in every area code.
        DeniedRange("+1xxx976", .premiumRate, "NANP 976 exchange premium rate"),
        DeniedRange("+4490", .premiumRate, "UK 090 premium rate"),
        DeniedRange("+4491", .premiumRate, "UK 091 premium rate"),
        DeniedRange("+44118", .premiumRate, "UK 118 directory enquiries"),
        DeniedRange("+4484", .sharedCost, "UK 084 service numbers"),
        DeniedRange("+4487", .sharedCost, "UK 087 service numbers"),
        DeniedRange("+49900", .premiumRate, "Germany 0900 premium rate"),
        DeniedRange("+49137", .premiumRate, "Germany 0137 mass calling"),
        DeniedRange("+49118", .premiumRate, "Germany 118 directory enquiries"),
        DeniedRange("+49180", .sharedCost, "Germany 0180 shared cost"),
        DeniedRange("+3389", .premiumRate, "France 089 premium rate"),
        DeniedRange("+3381", .sharedCost, "France 081 shared cost"),
        DeniedRange("+3382", .sharedCost, "France 082 shared cost"),
        DeniedRange("+31900", .premiumRate, "Netherlands 0900 premium rate"),
        DeniedRange("+31906", .premiumRate, "Netherlands 0906 premium rate"),
        DeniedRange("+31909", .premiumRate, "Netherlands 0909 premium rate"),
        DeniedRange("+3290", .premiumRate, "Belgium 090x premium rate"),
        DeniedRange("+41900", .premiumRate, "Switzerland 0900 premium rate"),
        DeniedRange("+41906", .premiumRate, "Switzerland 0906 premium rate"),
        DeniedRange("+43900", .premiumRate, "Austria 0900 premium rate"),
        DeniedRange("+43930", .premiumRate, "Austria 0930 premium rate"),
        DeniedRange("+3989", .premiumRate, "Italy 89x premium rate"),
        DeniedRange("+34803", .premiumRate, "Spain 803 premium rate"),
        DeniedRange("+34806", .premiumRate, "Spain 806 premium rate"),
        DeniedRange("+34807", .premiumRate, "Spain 807 premium rate"),
        DeniedRange("+34905", .premiumRate, "Spain 905 mass calling"),
        DeniedRange("+61190", .premiumRate, "Australia 190x premium rate"),
        DeniedRange("118", .premiumRate, "118 directory enquiries"),
        DeniedRange("09", .premiumRate, "09xx national premium rate"),
    ]

    /// NANP (+1) has 25 members: the United States and Canada share every area code but these, which
    /// belong to the other 23 (and to US territories that carriers bill as international).
    public static let nanpForeignAreaCodes: [String: String] = [
        "242": "the Bahamas", "246": "Barbados", "264": "Anguilla", "268": "Antigua and Barbuda",
        "284": "the British Virgin Islands", "340": "the US Virgin Islands", "345": "the Cayman Islands",
        "441": "Bermuda", "473": "Grenada", "649": "the Turks and Caicos Islands", "658": "Jamaica",
        "664": "Montserrat", "670": "the Northern Mariana Islands", "671": "Guam", "684": "American Samoa",
        "721": "Sint Maarten", "758": "Saint Lucia", "767": "Dominica", "784": "Saint Vincent and the Grenadines",
        "787": "Puerto Rico", "809": "the Dominican Republic", "829": "the Dominican Republic",
        "849": "the Dominican Republic", "868": "Trinidad and Tobago", "869": "Saint Kitts and Nevis",
        "876": "Jamaica", "939": "Puerto Rico",
    ]

    /// ITU-T E.164 country codes of two digits; `1` and `7` have one, every other code three.
    private static let twoDigitCountryCodes: Set<String> = [
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49",
        "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84",
        "86", "90", "91", "92", "93", "94", "95", "98",
    ]

    /// The country code of an E.164 number (`+442079460000` → `44`).
    public static func countryCode(of e164: String) -> String {
        let digits = e164.dropFirst()
        if digits.hasPrefix("1") || digits.hasPrefix("7") { return String(digits.prefix(1)) }
        let two = String(digits.prefix(2))
        return twoDigitCountryCodes.contains(two) ? two : String(digits.prefix(3))
    }
}
