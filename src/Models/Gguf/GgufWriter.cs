using System.Text;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Models.Gguf;

/// <summary>
/// Builds a GGUF v3 file (layout in <see cref="GgufFile"/>): metadata in the order added, then the tensor table,
/// then the tensor data, each tensor aligned to <see cref="GgufFile.DefaultAlignment"/> bytes.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<(string Key, GgufValue Value)> _metadata = [];
    private readonly List<(string Name, long[] Dimensions, QuantType Type, byte[] Data)> _tensors = [];
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public GgufWriter Add(string key, GgufValue value)
    {
        if (!_keys.Add(key))
        {
            throw new ArgumentException($"metadata '{key}' was added twice", nameof(key));
        }
        _metadata.Add((key, value));
        return this;
    }

    /// <summary>Adds a tensor. <paramref name="dimensions"/> are in GGUF order: ne[0] (contiguous) first.</summary>
    public GgufWriter AddTensor(string name, QuantType type, long[] dimensions, byte[] data)
    {
        if (!_names.Add(name))
        {
            throw new ArgumentException($"tensor '{name}' was added twice", nameof(name));
        }
        QuantTypeTraits traits = QuantTypeTraits.Of(type);
        long elements = dimensions.Aggregate(1L, (a, b) => checked(a * b));
        long expected = traits.RowBytes(dimensions[0]) * (elements / dimensions[0]);
        if (data.Length != expected)
        {
            throw new ArgumentException($"tensor '{name}' ({traits.Name}, {string.Join(" x ", dimensions)}) needs {expected} bytes, not {data.Length}", nameof(data));
        }
        _tensors.Add((name, dimensions, type, data));
        return this;
    }

    public void WriteTo(Stream stream)
    {
        var header = new MemoryStream();
        var w = new BinaryWriter(header, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach ((string key, GgufValue value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)value.Type);
            WriteValue(w, value);
        }
        long offset = 0;
        foreach ((string name, long[] dimensions, QuantType type, byte[] data) in _tensors)
        {
            WriteString(w, name);
            w.Write((uint)dimensions.Length);
            foreach (long d in dimensions)
            {
                w.Write((ulong)d);
            }
            w.Write((uint)type);
            w.Write((ulong)offset);
            offset += GgufFile.AlignUp(data.Length, GgufFile.DefaultAlignment);
        }
        w.Flush();
        Pad(header, header.Length);
        header.Position = 0;
        header.CopyTo(stream);

        foreach ((_, _, _, byte[] data) in _tensors)
        {
            stream.Write(data);
            Pad(stream, data.Length);
        }
        stream.Flush();
    }

    public void WriteTo(string path)
    {
        // Write next to the target and rename, so a crash never leaves a half-written model where one is expected.
        string temporary = path + ".partial";
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            WriteTo(file);
        }
        File.Move(temporary, path, overwrite: true);
    }

    private static void Pad(Stream stream, long length)
    {
        long padding = GgufFile.AlignUp(length, GgufFile.DefaultAlignment) - length;
        for (long i = 0; i < padding; i++)
        {
            stream.WriteByte(0);
        }
    }

    private static void WriteString(BinaryWriter w, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValue value)
    {
        switch (value.Value)
        {
            case byte v: w.Write(v); break;
            case sbyte v: w.Write(v); break;
            case ushort v: w.Write(v); break;
            case short v: w.Write(v); break;
            case uint v: w.Write(v); break;
            case int v: w.Write(v); break;
            case float v: w.Write(v); break;
            case bool v: w.Write(v ? (byte)1 : (byte)0); break;
            case string v: WriteString(w, v); break;
            case ulong v: w.Write(v); break;
            case long v: w.Write(v); break;
            case double v: w.Write(v); break;
            case Array array:
                w.Write((uint)value.ElementType);
                w.Write((ulong)array.Length);
                foreach (object element in array)
                {
                    WriteValue(w, element as GgufValue ?? new GgufValue(value.ElementType, element));
                }
                break;
            default:
                throw new ArgumentException($"cannot write a metadata value of CLR type {value.Value.GetType().Name}");
        }
    }
}
