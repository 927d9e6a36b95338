namespace EdgeSlm.Models.Gguf;

/// <summary>GGUF metadata value types (<c>enum gguf_type</c>).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>
/// One metadata value. Scalars are held boxed as their CLR type (byte, sbyte, ushort, short, uint, int, float,
/// bool, string, ulong, long, double); arrays as a CLR array of the element type, with
/// <see cref="ElementType"/> naming it (nested arrays are held as <c>GgufValue[]</c>).
/// </summary>
public sealed record GgufValue(GgufValueType Type, object Value, GgufValueType ElementType = GgufValueType.UInt8)
{
    public static GgufValue Of(string value) => new(GgufValueType.String, value);
    public static GgufValue Of(uint value) => new(GgufValueType.UInt32, value);
    public static GgufValue Of(int value) => new(GgufValueType.Int32, value);
    public static GgufValue Of(float value) => new(GgufValueType.Float32, value);
    public static GgufValue Of(bool value) => new(GgufValueType.Bool, value);
    public static GgufValue Of(ulong value) => new(GgufValueType.UInt64, value);
    public static GgufValue Of(string[] values) => new(GgufValueType.Array, values, GgufValueType.String);
    public static GgufValue Of(int[] values) => new(GgufValueType.Array, values, GgufValueType.Int32);
    public static GgufValue Of(float[] values) => new(GgufValueType.Array, values, GgufValueType.Float32);

    /// <summary>The value as a whole number, whatever integer type the file used.</summary>
    public long AsInt64(string key) => Value switch
    {
        byte v => v,
        sbyte v => v,
        ushort v => v,
        short v => v,
        uint v => v,
        int v => v,
        ulong v when v <= long.MaxValue => (long)v,
        long v => v,
        _ => throw new GgufFormatException($"metadata '{key}' is {Describe()}, not an integer"),
    };

    public float AsSingle(string key) => Value switch
    {
        float v => v,
        double v => (float)v,
        _ => throw new GgufFormatException($"metadata '{key}' is {Describe()}, not a float"),
    };

    public string AsString(string key) => Value as string ?? throw new GgufFormatException($"metadata '{key}' is {Describe()}, not a string");

    public bool AsBool(string key) => Value is bool v ? v : throw new GgufFormatException($"metadata '{key}' is {Describe()}, not a bool");

    public T[] AsArray<T>(string key) => Value as T[] ?? throw new GgufFormatException($"metadata '{key}' is {Describe()}, not an array of {typeof(T).Name}");

    public string Describe() => Type == GgufValueType.Array
        ? $"array of {((Array)Value).Length} {ElementType.ToString().ToLowerInvariant()}"
        : Type.ToString().ToLowerInvariant();

    /// <summary>Short text for <c>edgeslm info</c>: scalars in full, arrays by their first few elements.</summary>
    public string Display(int maxElements = 8)
    {
        if (Value is Array array)
        {
            IEnumerable<string> first = array.Cast<object>().Take(maxElements).Select(v => v is string s ? Quote(s) : v is GgufValue g ? g.Display(maxElements) : Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "");
            return $"[{string.Join(", ", first)}{(array.Length > maxElements ? $", ... ({array.Length} in all)" : "")}]";
        }
        return Value is string text ? Quote(text) : Convert.ToString(Value, System.Globalization.CultureInfo.InvariantCulture) ?? "";
    }

    private static string Quote(string text) =>
        "\"" + (text.Length > 80 ? text[..80] + "..." : text).Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n") + "\"";
}

/// <summary>A GGUF file that cannot be used: the message names what is wrong and where (key, tensor, offset).</summary>
public sealed class GgufFormatException(string message) : Exception(message);
