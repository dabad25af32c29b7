import Foundation
import Testing
import WarehouseSyncCore

@Suite("JSONValue parsing and serialization")
struct JSONValueTests {
    @Test(
        "valid documents parse to the expected value",
        arguments: [
            ("null", JSONValue.null),
            ("true", .bool(true)),
            (" \t\r\nfalse\n", .bool(false)),
            ("0", .number("0")),
            ("-0", .number("-0")),
            ("12.50", .number("12.50")),
            ("1E+10", .number("1E+10")),
            ("-1.5e-3", .number("-1.5e-3")),
            ("123456789012345678901234567890", .number("123456789012345678901234567890")),
            (#""""#, .string("")),
            (#""a\"b\\c\/d\b\f\n\r\t""#, .string("a\"b\\c/d\u{8}\u{C}\n\r\t")),
            ("[]", .array([])),
            ("{}", .object(JSONObject())),
            (#"[1, "x", null, [true], {}]"#, .array([.number("1"), .string("x"), .null, .array([.bool(true)]), .object(JSONObject())])),
            (#"{"a": {"b": [1, 2.0]}, "c": "d"}"#, ["a": ["b": [.number("1"), .number("2.0")]], "c": "d"]),
        ] as [(String, JSONValue)]
    )
    func parsesValid(text: String, expected: JSONValue) throws {
        #expect(try JSONValue(parsing: text) == expected)
        #expect(try JSONValue(parsing: Array(text.utf8)) == expected)
    }

    @Test("numbers keep their literal text, never going through Double")
    func numbersVerbatim() throws {
        let value = try JSONValue(parsing: #"{"q": 0.1, "big": 9007199254740993, "exp": 1.50E+02, "neg": -0.000001}"#)
        #expect(value["q"] == .number("0.1"))
        #expect(value["big"] == .number("9007199254740993"))
        #expect(value["exp"] == .number("1.50E+02"))
        #expect(value["neg"]?.numberLiteral == "-0.000001")
        #expect(value.serialized() == #"{"q":0.1,"big":9007199254740993,"exp":1.50E+02,"neg":-0.000001}"#)
    }

    struct InvalidCase: Sendable, CustomTestStringConvertible {
        let text: String
        let code: JSONParseError.Code
        let offset: Int
        let detail: String
        var testDescription: String { text.debugDescription }
    }

    @Test(
        "invalid documents fail with the code, byte offset and expectation",
        arguments: [
            InvalidCase(text: "", code: .unexpectedEndOfInput, offset: 0, detail: "expected a JSON value, found end of input"),
            InvalidCase(text: "   ", code: .unexpectedEndOfInput, offset: 3, detail: "expected a JSON value, found end of input"),
            InvalidCase(text: "{", code: .unexpectedEndOfInput, offset: 1, detail: "expected a string key, found end of input"),
            InvalidCase(text: #"{"a":1,}"#, code: .unexpectedCharacter, offset: 7, detail: "expected a string key"),
            InvalidCase(text: #"{"a" 1}"#, code: .unexpectedCharacter, offset: 5, detail: "expected ':' after the key"),
            InvalidCase(text: #"{"a":1 "b":2}"#, code: .unexpectedCharacter, offset: 7, detail: "expected ',' or '}'"),
            InvalidCase(text: "{a:1}", code: .unexpectedCharacter, offset: 1, detail: "expected a string key"),
            InvalidCase(text: "[1,]", code: .unexpectedCharacter, offset: 3, detail: "expected a JSON value"),
            InvalidCase(text: "[1 2]", code: .unexpectedCharacter, offset: 3, detail: "expected ',' or ']'"),
            InvalidCase(text: "[1", code: .unexpectedEndOfInput, offset: 2, detail: "expected ',' or ']', found end of input"),
            InvalidCase(text: "01", code: .invalidNumber, offset: 1, detail: "expected '.', 'e' or the end of the number after a leading 0 in number"),
            InvalidCase(text: "-", code: .unexpectedEndOfInput, offset: 1, detail: "expected a digit, found end of input"),
            InvalidCase(text: "-x", code: .invalidNumber, offset: 1, detail: "expected a digit in number"),
            InvalidCase(text: "1.", code: .unexpectedEndOfInput, offset: 2, detail: "expected a digit after '.', found end of input"),
            InvalidCase(text: "1.e5", code: .invalidNumber, offset: 2, detail: "expected a digit after '.' in number"),
            InvalidCase(text: "1e+", code: .unexpectedEndOfInput, offset: 3, detail: "expected an exponent digit, found end of input"),
            InvalidCase(text: ".5", code: .unexpectedCharacter, offset: 0, detail: "expected a JSON value"),
            InvalidCase(text: "+1", code: .unexpectedCharacter, offset: 0, detail: "expected a JSON value"),
            InvalidCase(text: "NaN", code: .unexpectedCharacter, offset: 0, detail: "expected a JSON value"),
            InvalidCase(text: "Infinity", code: .unexpectedCharacter, offset: 0, detail: "expected a JSON value"),
            InvalidCase(text: "tru", code: .unexpectedEndOfInput, offset: 3, detail: "expected 'true', found end of input"),
            InvalidCase(text: "nul1", code: .unexpectedCharacter, offset: 0, detail: "expected a JSON value ('null'?)"),
            InvalidCase(text: "\"abc", code: .unexpectedEndOfInput, offset: 4, detail: "expected a closing '\"', found end of input"),
            InvalidCase(text: "\"a\tb\"", code: .invalidString, offset: 2, detail: "expected an escape (\\n, \\t, \\uXXXX) instead of a raw control character in string"),
            InvalidCase(text: #""\x""#, code: .invalidString, offset: 1, detail: #"expected one of \" \\ \/ \b \f \n \r \t \uXXXX"#),
            InvalidCase(text: #""\u12G4""#, code: .invalidString, offset: 5, detail: #"expected 4 hex digits after \u"#),
            InvalidCase(text: #""\ud800""#, code: .invalidString, offset: 1, detail: #"expected a low surrogate escape (\uDC00-\uDFFF) after the high surrogate"#),
            InvalidCase(text: #""\ud800\u0041""#, code: .invalidString, offset: 7, detail: #"expected a low surrogate escape (\uDC00-\uDFFF) after the high surrogate"#),
            InvalidCase(text: #""\udc00""#, code: .invalidString, offset: 1, detail: #"expected a high surrogate escape (\uD800-\uDBFF) before the low surrogate"#),
            InvalidCase(text: "{} {}", code: .trailingData, offset: 3, detail: "expected end of input after the JSON value"),
            InvalidCase(text: "\u{FEFF}{}", code: .unexpectedCharacter, offset: 0, detail: "expected a JSON value"),
        ]
    )
    func rejectsInvalid(testCase: InvalidCase) {
        #expect {
            try JSONValue(parsing: testCase.text)
        } throws: { error in
            guard let error = error as? JSONParseError else { return false }
            #expect(error.code == testCase.code)
            #expect(error.offset == testCase.offset)
            #expect(error.detail == testCase.detail)
            #expect(error.description == "\(testCase.detail) at byte \(testCase.offset)")
            return true
        }
    }

    @Test(
        "malformed UTF-8 in strings is rejected at the offending byte",
        arguments: [
            [0x22, 0xC3, 0x28, 0x22],  // bad continuation byte
            [0x22, 0xC0, 0xAF, 0x22],  // overlong '/'
            [0x22, 0xE0, 0x80, 0xAF, 0x22],  // overlong 3-byte form
            [0x22, 0xED, 0xA0, 0x80, 0x22],  // UTF-16 surrogate encoded in UTF-8
            [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // above U+10FFFF
            [0x22, 0xE2, 0x82],  // truncated sequence
            [0x22, 0x80, 0x22],  // lone continuation byte
            [0x22, 0xFF, 0x22],
        ] as [[UInt8]]
    )
    func rejectsMalformedUTF8(bytes: [UInt8]) {
        #expect(throws: JSONParseError(code: .invalidUTF8, offset: 1, detail: "expected well-formed UTF-8")) {
            try JSONValue(parsing: bytes)
        }
    }

    @Test("a non-ASCII byte outside a string is an unexpected character")
    func nonASCIIOutsideString() {
        #expect(throws: JSONParseError(code: .unexpectedCharacter, offset: 1, detail: "expected a JSON value")) {
            try JSONValue(parsing: [0x5B, 0xC3, 0xA9, 0x5D] as [UInt8])
        }
    }

    @Test("a duplicate key is an error that names the key", arguments: [3, 40])
    func duplicateKey(memberCount: Int) {
        var text = "{"
        for index in 0..<memberCount {
            text += "\"k\(index)\": \(index), "
        }
        let offset = text.utf8.count
        text += "\"k1\": true}"
        #expect {
            try JSONValue(parsing: text)
        } throws: { error in
            guard let error = error as? JSONParseError else { return false }
            return error.code == .duplicateKey && error.key == "k1" && error.offset == offset
                && error.description == "duplicate key 'k1' at byte \(offset)"
        }
    }

    @Test("nesting is limited", arguments: [1, 63, 64])
    func depthWithinLimit(depth: Int) throws {
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        _ = try JSONValue(parsing: text)
        let objects = String(repeating: #"{"a":"#, count: depth) + "1" + String(repeating: "}", count: depth)
        _ = try JSONValue(parsing: objects)
    }

    @Test("nesting beyond the limit fails at the opening bracket")
    func depthBeyondLimit() {
        let text = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect {
            try JSONValue(parsing: text)
        } throws: { error in
            (error as? JSONParseError)?.code == .depthLimitExceeded && (error as? JSONParseError)?.offset == 64
        }
        #expect(throws: JSONParseError.self) {
            try JSONValue(parsing: "[[[]]]", maxDepth: 2)
        }
        #expect((try? JSONValue(parsing: "[[]]", maxDepth: 2)) != nil)
    }

    @Test(
        "unicode escapes, surrogate pairs and raw UTF-8",
        arguments: [
            (#""\u00e9""#, "é"),
            (#""\u00E9t\u00e9""#, "été"),
            (#""\ud83d\ude00""#, "😀"),
            (#""x\uD83D\uDE00y""#, "x😀y"),
            (#""\u0000""#, "\u{0}"),
            (#""\u20ac""#, "€"),
            ("\"😀 é €\"", "😀 é €"),
            ("\"é\\n€\"", "é\n€"),
        ]
    )
    func unicode(text: String, expected: String) throws {
        #expect(try JSONValue(parsing: text) == .string(expected))
    }

    @Test("object members keep their order; equality ignores it")
    func objectOrder() throws {
        let value = try JSONValue(parsing: #"{"z": 1, "a": 2, "m": 3}"#)
        let object = try #require(value.objectValue)
        #expect(object.keys == ["z", "a", "m"])
        #expect(object["a"] == .number("2"))
        #expect(object["missing"] == nil)
        #expect(value == (try JSONValue(parsing: #"{"a": 2, "m": 3, "z": 1}"#)))
        #expect(value != (try JSONValue(parsing: #"{"a": 2, "m": 3}"#)))
        #expect(value != (try JSONValue(parsing: #"{"a": 2, "m": 3, "z": 2}"#)))

        var edited = object
        edited["a"] = "two"
        edited["new"] = true
        edited["z"] = nil
        #expect(edited.keys == ["a", "m", "new"])
        #expect(JSONValue.object(edited).serialized() == #"{"a":"two","m":3,"new":true}"#)
    }

    @Test("Data, [UInt8], UTF-8 views and non-contiguous collections all parse")
    func inputKinds() throws {
        let text = #"{"a": [1, "é"]}"#
        let expected: JSONValue = ["a": [1, "é"]]
        #expect(try JSONValue(parsing: Data(text.utf8)) == expected)
        #expect(try JSONValue(parsing: Array(text.utf8)) == expected)
        #expect(try JSONValue(parsing: text.utf8) == expected)
        #expect(try JSONValue(parsing: text.utf8.lazy.map { $0 }) == expected)
    }

    @Test("compact and pretty serialization")
    func serialization() throws {
        let value: JSONValue = [
            "schema": "inventory.delta/1",
            "quantity": .number("12.50"),
            "flags": [true, false, nil],
            "empty": [:],
            "none": [],
            "nested": ["k": "v"],
        ]
        #expect(
            value.serialized()
                == #"{"schema":"inventory.delta/1","quantity":12.50,"flags":[true,false,null],"empty":{},"none":[],"nested":{"k":"v"}}"#
        )
        #expect(
            value.serialized(pretty: true) == """
                {
                  "schema": "inventory.delta/1",
                  "quantity": 12.50,
                  "flags": [
                    true,
                    false,
                    null
                  ],
                  "empty": {},
                  "none": [],
                  "nested": {
                    "k": "v"
                  }
                }
                """
        )
    }

    @Test("strings are escaped so that they parse back unchanged")
    func stringEscaping() throws {
        let text = "quote\" backslash\\ slash/ controls\u{0}\u{1}\u{8}\u{9}\u{A}\u{C}\u{D}\u{1F} del\u{7F} é 😀 \u{2028}"
        let serialized = JSONValue.string(text).serialized()
        #expect(
            serialized
                == #""quote\" backslash\\ slash/ controls\u0000\u0001\b\t\n\f\r\u001f del"# + "\u{7F} é 😀 \u{2028}\""
        )
        #expect(try JSONValue(parsing: serialized) == .string(text))
        #expect(JSONValue.object(JSONObject(uniqueKeysWithValues: [("k\"ey", .null)])).serialized() == #"{"k\"ey":null}"#)
    }

    @Test("every sample event round-trips through serialize and parse", arguments: EventSamples.all.map(\.line))
    func roundTrip(line: String) throws {
        let value = try JSONValue(parsing: line)
        #expect(value.serialized() == line)
        #expect(try JSONValue(parsing: value.serialized(pretty: true)) == value)
        #expect(try JSONValue(parsing: value.serializedBytes()) == value)
    }
}
