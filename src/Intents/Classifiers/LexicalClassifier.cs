using System.Numerics.Tensors;
using System.Text;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Kernels.Activations;

namespace EdgeSlm.Intents.Classifiers;

/// <summary>Training settings of <see cref="LexicalClassifier"/>.</summary>
/// <param name="Epochs">Passes over the examples.</param>
/// <param name="LearningRate">AdaGrad's step size.</param>
/// <param name="L2">Weight decay applied with each update of a weight.</param>
/// <param name="MaxWeights">Vocabulary × classes cap: rarer words and word pairs are dropped until the weights fit (16 MB at the default).</param>
public sealed record LexicalTraining(int Epochs = 10, float LearningRate = 0.5f, float L2 = 1e-5f, int Seed = 20241126, int MaxWeights = 4 << 20);

/// <summary>
/// Multinomial logistic regression on the words of an utterance: its words and pairs of adjacent words, weighted
/// by inverse document frequency over the training sentences and L2-normalised. It sees what a frozen sentence
/// embedding blurs: the one word that separates "mute the volume" from "turn the volume down", or "what alarms
/// do I have" from "set an alarm". <see cref="IntentHead"/> adds its log-probabilities, weighted, to those of the
/// embedding classifier. Trained with AdaGrad one example at a time, which touches only the example's few
/// features, so training is fast however large the vocabulary; deterministic for a seed.
/// </summary>
public sealed class LexicalClassifier
{
    private readonly string[] _classes;
    private readonly Dictionary<string, int> _vocabulary;
    private readonly float[] _idf;     // (features)
    private readonly float[] _weights; // (features, classes): one feature's class weights side by side
    private readonly float[] _bias;    // (classes)

    private LexicalClassifier(string[] classes, Dictionary<string, int> vocabulary, float[] idf, float[] weights, float[] bias)
    {
        _classes = classes;
        _vocabulary = vocabulary;
        _idf = idf;
        _weights = weights;
        _bias = bias;
    }

    public IReadOnlyList<string> Classes => _classes;
    /// <summary>Words and word pairs it knows.</summary>
    public int VocabularySize => _idf.Length;

    /// <summary>The words and adjacent pairs of words of a text, lower case ("w:turn", "p:turn off").</summary>
    internal static IEnumerable<string> Terms(string text)
    {
        List<Word> words = Words.Split(text);
        for (int i = 0; i < words.Count; i++)
        {
            yield return "w:" + words[i].Text;
            if (i + 1 < words.Count)
            {
                yield return "p:" + words[i].Text + " " + words[i + 1].Text;
            }
        }
    }

    public static LexicalClassifier Train(IReadOnlyList<string> classes, IReadOnlyList<string> texts, int[] labels, LexicalTraining settings)
    {
        int n = texts.Count, k = classes.Count;
        if (labels.Length != n || k == 0)
        {
            throw new ArgumentException($"{n} texts need {n} labels (got {labels.Length}) and at least one class");
        }
        if (labels.Any(l => (uint)l >= (uint)k))
        {
            throw new ArgumentException($"labels must be class indices below {k}");
        }

        // Document frequencies; the vocabulary keeps terms seen in at least minimum sentences, the smallest
        // minimum whose weights fit the cap.
        var documentFrequency = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string text in texts)
        {
            foreach (string term in Terms(text).Distinct(StringComparer.Ordinal))
            {
                documentFrequency[term] = documentFrequency.GetValueOrDefault(term) + 1;
            }
        }
        int minimum = 1;
        while ((long)documentFrequency.Count(p => p.Value >= minimum) * k > settings.MaxWeights)
        {
            minimum++;
        }
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var idf = new List<float>();
        foreach ((string term, int frequency) in documentFrequency.Where(p => p.Value >= minimum).OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            vocabulary[term] = vocabulary.Count;
            idf.Add((float)(Math.Log((1.0 + n) / (1.0 + frequency)) + 1));
        }

        var classifier = new LexicalClassifier(classes.ToArray(), vocabulary, idf.ToArray(), new float[vocabulary.Count * k], new float[k]);
        (int[] Ids, float[] Values)[] examples = texts.Select(classifier.Vectorize).ToArray();
        float[] weights = classifier._weights, bias = classifier._bias;
        var weightSquares = new float[weights.Length];
        var biasSquares = new float[k];
        var gradient = new float[k];
        var step = new float[k];
        var scale = new float[k];
        int[] order = Enumerable.Range(0, n).ToArray();
        var random = new Random(settings.Seed);
        float rate = settings.LearningRate, decay = settings.L2;
        for (int epoch = 0; epoch < settings.Epochs; epoch++)
        {
            random.Shuffle(order);
            foreach (int i in order)
            {
                (int[] ids, float[] values) = examples[i];
                classifier.Logits(ids, values, gradient);
                StableSoftMax.InPlace(gradient);
                gradient[labels[i]] -= 1; // ∂(−log p_label)/∂logits
                AdaGrad(bias, gradient, biasSquares, rate, step, scale);
                for (int j = 0; j < ids.Length; j++)
                {
                    // g = ∂loss/∂logit · value + decay · w, for the term's weights of every class at once.
                    Span<float> w = weights.AsSpan(ids[j] * k, k);
                    TensorPrimitives.Multiply(w, decay, step);
                    TensorPrimitives.MultiplyAdd(gradient, values[j], step, step);
                    AdaGrad(w, step, weightSquares.AsSpan(ids[j] * k, k), rate, step, scale);
                }
            }
        }
        return classifier;
    }

    /// <summary>
    /// One AdaGrad step: squares += g·g, then parameters −= rate·g / √(squares + 1e-8). Rounds as the element-wise
    /// loop it replaced; <paramref name="scratch"/> may be <paramref name="gradient"/> (it is then overwritten).
    /// </summary>
    private static void AdaGrad(Span<float> parameters, Span<float> gradient, Span<float> squares, float rate, Span<float> scratch, Span<float> denominator)
    {
        TensorPrimitives.Multiply(gradient, gradient, denominator);
        TensorPrimitives.Add(squares, denominator, squares);
        TensorPrimitives.Add(squares, 1e-8f, denominator);
        TensorPrimitives.Sqrt(denominator, denominator);
        TensorPrimitives.Multiply(gradient, rate, scratch);
        TensorPrimitives.Divide(scratch, denominator, scratch);
        TensorPrimitives.Subtract(parameters, scratch, parameters);
    }

    /// <summary>log p(class | text) for every class.</summary>
    public void LogProbabilities(string text, Span<float> logProbabilities)
    {
        if (logProbabilities.Length < _classes.Length)
        {
            throw new ArgumentException($"need room for {_classes.Length} classes (got {logProbabilities.Length})");
        }
        Span<float> scores = logProbabilities[.._classes.Length];
        (int[] ids, float[] values) = Vectorize(text);
        Logits(ids, values, scores);
        Span<float> scratch = scores.Length <= 1024 ? stackalloc float[scores.Length] : new float[scores.Length];
        TensorPrimitives.Subtract(scores, (float)LogSumExp.Compute(scores, scratch), scores);
    }

    private void Logits(int[] ids, float[] values, Span<float> logits)
    {
        int k = _classes.Length;
        _bias.CopyTo(logits);
        for (int j = 0; j < ids.Length; j++)
        {
            TensorPrimitives.MultiplyAdd(_weights.AsSpan(ids[j] * k, k), values[j], logits, logits);
        }
    }

    /// <summary>The known terms of a text with their tf-idf values, L2-normalised (a term counts once).</summary>
    private (int[] Ids, float[] Values) Vectorize(string text)
    {
        int[] ids = Terms(text).Select(t => _vocabulary.TryGetValue(t, out int id) ? id : -1).Where(id => id >= 0).Distinct().ToArray();
        var values = new float[ids.Length];
        for (int j = 0; j < ids.Length; j++)
        {
            values[j] = _idf[ids[j]];
        }
        float norm = TensorPrimitives.Norm(values);
        if (norm > 0)
        {
            TensorPrimitives.Divide(values, norm, values);
        }
        return (ids, values);
    }

    // File format, version 1, little-endian:
    //   magic      8 bytes "EDGELEXI"
    //   version    u32 1
    //   classes    u32 k (1..MaxClasses), then k names: u16 byte length (1..MaxNameBytes), UTF-8
    //   terms      u32 f (0..MaxTerms), then f terms: u16 byte length (1..MaxNameBytes), UTF-8, distinct
    //   idf        f f32
    //   weights    f × k f32, term after term
    //   bias       k f32
    //   checksum   32 bytes SHA-256 of everything before it
    private static ReadOnlySpan<byte> Magic => "EDGELEXI"u8;
    private const uint FormatVersion = 1;
    private const int MaxClasses = 1 << 16;
    private const int MaxTerms = 1 << 22;
    private const int MaxNameBytes = 1024;
    private const long MaxFloats = 1 << 26; // 256 MB
    private const string FileKind = "lexical head";

    public void Write(Stream stream)
    {
        using var buffer = new MemoryStream();
        buffer.Write(Magic);
        ChecksummedReader.WriteUInt32(buffer, FormatVersion);
        ChecksummedReader.WriteUInt32(buffer, (uint)_classes.Length);
        foreach (string name in _classes)
        {
            ChecksummedReader.WriteName(buffer, name, MaxNameBytes, FileKind);
        }
        var terms = new string[_idf.Length];
        foreach ((string term, int id) in _vocabulary)
        {
            terms[id] = term;
        }
        ChecksummedReader.WriteUInt32(buffer, (uint)terms.Length);
        foreach (string term in terms)
        {
            ChecksummedReader.WriteName(buffer, term, MaxNameBytes, FileKind);
        }
        ChecksummedReader.WriteFloats(buffer, _idf);
        ChecksummedReader.WriteFloats(buffer, _weights);
        ChecksummedReader.WriteFloats(buffer, _bias);
        ChecksummedReader.WriteWithChecksum(buffer, stream);
    }

    /// <summary>Reads what <see cref="Write"/> wrote.</summary>
    /// <exception cref="InvalidDataException">The stream does not hold a valid lexical head; the message says what is wrong.</exception>
    public static LexicalClassifier Read(Stream stream)
    {
        using var reader = new ChecksummedReader(stream, FileKind);
        reader.Header(Magic, FormatVersion);
        uint classCount = reader.UInt32("class count");
        if (classCount is 0 or > MaxClasses)
        {
            throw new InvalidDataException($"lexical head has {classCount} classes; 1 to {MaxClasses} are allowed");
        }
        string[] classes = reader.DistinctNames((int)classCount, MaxNameBytes, "class");
        uint termCount = reader.UInt32("term count");
        long floats = (long)termCount * (classCount + 1) + classCount;
        if (termCount > MaxTerms || floats > MaxFloats || (stream.CanSeek && stream.Length - stream.Position < floats * sizeof(float)))
        {
            throw new InvalidDataException($"lexical head: {termCount} terms of {classCount} classes need {floats * sizeof(float)} bytes of weights, more than {(termCount > MaxTerms || floats > MaxFloats ? "a head may hold" : "the file has left")}");
        }
        string[] terms = reader.DistinctNames((int)termCount, MaxNameBytes, "term");
        var vocabulary = new Dictionary<string, int>(terms.Length, StringComparer.Ordinal);
        for (int id = 0; id < terms.Length; id++)
        {
            vocabulary[terms[id]] = id;
        }
        float[] idf = reader.Floats((int)termCount, "idf");
        float[] weights = reader.Floats((int)(termCount * classCount), "weights");
        float[] bias = reader.Floats((int)classCount, "bias");
        reader.VerifyChecksum();
        if (idf.Any(v => !float.IsFinite(v)) || weights.Any(v => !float.IsFinite(v)) || bias.Any(v => !float.IsFinite(v)))
        {
            throw new InvalidDataException("lexical head holds a non-finite number");
        }
        return new LexicalClassifier(classes, vocabulary, idf, weights, bias);
    }
}
