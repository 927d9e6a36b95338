using System.Runtime.InteropServices;
using Google.Protobuf;

namespace EdgeSlm.Models.Onnx;

/// <summary>An ONNX tensor (an initializer or a Constant node's value): shape, element type and its bytes.</summary>
/// <param name="DataType">ONNX TensorProto.DataType: 1 float, 6 int32, 7 int64, 10 float16, 11 double.</param>
public sealed record OnnxTensor(string Name, long[] Dimensions, int DataType, byte[] Data)
{
    public const int Float = 1;
    public const int Int32 = 6;
    public const int Int64 = 7;

    public long ElementCount => Dimensions.Aggregate(1L, (a, b) => a * b);

    public float[] ToSingles() => DataType == Float
        ? MemoryMarshal.Cast<byte, float>(Data).ToArray()
        : throw new OnnxFormatException($"tensor '{Name}' has data type {DataType}, not float");

    public long[] ToInt64s() => DataType switch
    {
        Int64 => MemoryMarshal.Cast<byte, long>(Data).ToArray(),
        Int32 => MemoryMarshal.Cast<byte, int>(Data).ToArray().Select(v => (long)v).ToArray(),
        _ => throw new OnnxFormatException($"tensor '{Name}' has data type {DataType}, not an integer type"),
    };
}

/// <summary>A graph node: operator, inputs and outputs by value name, and the tensor of a Constant node.</summary>
public sealed record OnnxNode(string OpType, string Name, string[] Inputs, string[] Outputs, OnnxTensor? ConstantValue);

/// <summary>An ONNX model that is not what the converter can read; the message says what and where.</summary>
public sealed class OnnxFormatException(string message) : Exception(message);

/// <summary>
/// The parts of an ONNX ModelProto the converter needs, read straight from the protobuf wire format with
/// Google.Protobuf's <see cref="CodedInputStream"/> (no generated code, so nothing for the trimmer to keep):
/// the graph's nodes in order, its initializers, inputs and outputs. Field numbers are those of onnx.proto3.
/// </summary>
public sealed class OnnxModel
{
    private OnnxModel(long irVersion, List<OnnxNode> nodes, Dictionary<string, OnnxTensor> initializers, List<string> inputs, List<string> outputs)
    {
        IrVersion = irVersion;
        Nodes = nodes;
        Initializers = initializers;
        Inputs = inputs;
        Outputs = outputs;
    }

    public long IrVersion { get; }
    public IReadOnlyList<OnnxNode> Nodes { get; }
    public IReadOnlyDictionary<string, OnnxTensor> Initializers { get; }
    public IReadOnlyList<string> Inputs { get; }
    public IReadOnlyList<string> Outputs { get; }

    public static OnnxModel Read(byte[] bytes)
    {
        try
        {
            return Parse(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxFormatException($"not a valid ONNX protobuf: {e.Message}");
        }
    }

    /// <summary>The tensor a value name refers to: an initializer or the output of a Constant node, if either.</summary>
    public OnnxTensor? ConstantFor(string valueName)
    {
        if (Initializers.TryGetValue(valueName, out OnnxTensor? tensor))
        {
            return tensor;
        }
        return Nodes.FirstOrDefault(n => n.OpType == "Constant" && n.Outputs.Contains(valueName))?.ConstantValue;
    }

    private static OnnxModel Parse(byte[] bytes)
    {
        var input = new CodedInputStream(bytes);
        long irVersion = 0;
        byte[]? graph = null;
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: irVersion = input.ReadInt64(); break;        // ModelProto.ir_version
                case 7: graph = input.ReadBytes().ToByteArray(); break; // ModelProto.graph
                default: input.SkipLastField(); break;
            }
        }
        if (graph is null)
        {
            throw new OnnxFormatException("the model has no graph");
        }

        var nodes = new List<OnnxNode>();
        var initializers = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        var inputs = new List<string>();
        var outputs = new List<string>();
        var g = new CodedInputStream(graph);
        while ((tag = g.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: nodes.Add(ReadNode(g.ReadBytes())); break;            // GraphProto.node
                case 5:                                                        // GraphProto.initializer
                    OnnxTensor tensor = ReadTensor(g.ReadBytes());
                    if (!initializers.TryAdd(tensor.Name, tensor))
                    {
                        throw new OnnxFormatException($"initializer '{tensor.Name}' appears twice");
                    }
                    break;
                case 11: inputs.Add(ReadValueInfoName(g.ReadBytes())); break;  // GraphProto.input
                case 12: outputs.Add(ReadValueInfoName(g.ReadBytes())); break; // GraphProto.output
                default: g.SkipLastField(); break;
            }
        }
        return new OnnxModel(irVersion, nodes, initializers, inputs, outputs);
    }

    private static OnnxNode ReadNode(ByteString bytes)
    {
        var input = bytes.CreateCodedInput();
        var inputs = new List<string>();
        var outputs = new List<string>();
        string name = "", opType = "";
        OnnxTensor? value = null;
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: inputs.Add(input.ReadString()); break;
                case 2: outputs.Add(input.ReadString()); break;
                case 3: name = input.ReadString(); break;
                case 4: opType = input.ReadString(); break;
                case 5: value = ReadAttributeTensor(input.ReadBytes()) ?? value; break; // NodeProto.attribute
                default: input.SkipLastField(); break;
            }
        }
        return new OnnxNode(opType, name, inputs.ToArray(), outputs.ToArray(), opType == "Constant" ? value : null);
    }

    /// <summary>The tensor of a `value` attribute (AttributeProto.t), the only attribute the converter reads.</summary>
    private static OnnxTensor? ReadAttributeTensor(ByteString bytes)
    {
        var input = bytes.CreateCodedInput();
        string name = "";
        OnnxTensor? tensor = null;
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: name = input.ReadString(); break;
                case 5: tensor = ReadTensor(input.ReadBytes()); break;
                default: input.SkipLastField(); break;
            }
        }
        return name == "value" ? tensor : null;
    }

    private static string ReadValueInfoName(ByteString bytes)
    {
        var input = bytes.CreateCodedInput();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == 1)
            {
                return input.ReadString();
            }
            input.SkipLastField();
        }
        return "";
    }

    private static OnnxTensor ReadTensor(ByteString bytes)
    {
        var input = bytes.CreateCodedInput();
        var dimensions = new List<long>();
        var floats = new List<float>();
        var int32s = new List<int>();
        var int64s = new List<long>();
        int dataType = 0;
        string name = "";
        byte[]? raw = null;
        bool external = false;
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            bool packed = WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited;
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: ReadRepeated(input, packed, dimensions, static i => i.ReadInt64()); break; // dims
                case 2: dataType = input.ReadInt32(); break;
                case 4: ReadRepeated(input, packed, floats, static i => i.ReadFloat()); break;    // float_data
                case 5: ReadRepeated(input, packed, int32s, static i => i.ReadInt32()); break;    // int32_data
                case 7: ReadRepeated(input, packed, int64s, static i => i.ReadInt64()); break;    // int64_data
                case 8: name = input.ReadString(); break;
                case 9: raw = input.ReadBytes().ToByteArray(); break;                              // raw_data
                case 13: external = true; input.SkipLastField(); break;                            // external_data
                default: input.SkipLastField(); break;
            }
        }
        if (external)
        {
            throw new OnnxFormatException($"tensor '{name}' keeps its data in an external file, which the converter does not read");
        }
        byte[] data = raw
            ?? (floats.Count > 0 ? MemoryMarshal.AsBytes(floats.ToArray().AsSpan()).ToArray()
            : int64s.Count > 0 ? MemoryMarshal.AsBytes(int64s.ToArray().AsSpan()).ToArray()
            : MemoryMarshal.AsBytes(int32s.ToArray().AsSpan()).ToArray());
        var tensor = new OnnxTensor(name, dimensions.ToArray(), dataType, data);
        int elementBytes = dataType switch { 1 or 6 => 4, 7 or 11 => 8, 10 => 2, _ => 0 };
        if (elementBytes != 0 && tensor.ElementCount * elementBytes != data.Length)
        {
            throw new OnnxFormatException($"tensor '{name}' has shape [{string.Join(", ", dimensions)}] but {data.Length} bytes of data");
        }
        return tensor;
    }

    private static void ReadRepeated<T>(CodedInputStream input, bool packed, List<T> into, Func<CodedInputStream, T> read)
    {
        if (!packed)
        {
            into.Add(read(input));
            return;
        }
        var inner = input.ReadBytes().CreateCodedInput();
        while (!inner.IsAtEnd)
        {
            into.Add(read(inner));
        }
    }
}
